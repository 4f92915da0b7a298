import type { Command } from "../command.js";
import { agent } from "./agent.js";
import { agents } from "./agents.js";
import { audit } from "./audit.js";
import { bench } from "./bench.js";
import { certs } from "./certs.js";
import { db } from "./db.js";
import { dev } from "./dev.js";
import { goal } from "./goal.js";
import { keys } from "./keys.js";
import { policy } from "./policy.js";
import { serve } from "./serve.js";
import { tenants } from "./tenants.js";

/** Every sub-command, in the order `agentmesh help` lists them. */
export const commands: Command[] = [
  dev,
  serve,
  bench,
  certs,
  policy,
  db,
  audit,
  agent,
  goal,
  agents,
  tenants,
  keys,
];
