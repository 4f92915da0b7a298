import type { Command } from "../command.js";
import { agent } from "./agent.js";
import { audit } from "./audit.js";
import { bench } from "./bench.js";
import { certs } from "./certs.js";
import { db } from "./db.js";
import { dev } from "./dev.js";
import { policy } from "./policy.js";
import { serve } from "./serve.js";

/** Every sub-command, in the order `agentmesh help` lists them. */
export const commands: Command[] = [dev, serve, bench, certs, policy, db, audit, agent];
