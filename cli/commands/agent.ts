import { builtinAgents } from "../../agents/index.js";
import { createMcpAgent } from "../../agents/mcp.js";
import { busOptionsFromEnv, connectBus } from "../../lib/bus/index.js";
import { loadConfig } from "../../lib/config/config.js";
import { createLogger } from "../../lib/log/logger.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { runAgent } from "../../sdk/agent/run-agent.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh agent <name> [--concurrency N] [--instance ID] [--grace-ms MS]
agentmesh agent mcp --server NAME [--concurrency N] -- <command> [args...]

Runs a built-in agent as its own process until SIGTERM/SIGINT (then drains).
Agents: ${Object.keys(builtinAgents).join(", ")}, mcp.
Bus: NATS_URL (JetStream; falls back to in-process only when unset),
AGENTMESH_BUS_PREFIX, AGENTMESH_BUS_ACK_WAIT_MS, AGENTMESH_BUS_MAX_DELIVER.
http: AGENTMESH_HTTP_ALLOW_HOSTS; shell: AGENTMESH_SHELL_ALLOW.`;

/** `agentmesh agent <name>`: one built-in agent as its own process. */
export const agent: Command = {
  name: "agent",
  summary: "run a built-in agent (text, data, http, shell, util, mcp) as its own process",
  usage,
  async run(args) {
    const dashdash = args.indexOf("--");
    const own = dashdash >= 0 ? args.slice(0, dashdash) : args;
    const serverCommand = dashdash >= 0 ? args.slice(dashdash + 1) : [];
    const [name, ...flags] = own;
    if (!name) throw new UsageError("which agent?");
    const opts = parseFlags(flags);
    const config = loadConfig();
    const log = createLogger({ name: `agent-${name === "mcp" ? `mcp-${opts.server}` : name}` });

    let close = async () => {};
    let definition: AgentDefinition;
    if (name === "mcp") {
      if (!opts.server) throw new UsageError("mcp needs --server NAME");
      const [command, ...rest] = serverCommand;
      if (!command) throw new UsageError("mcp needs the server command after --");
      const bridge = await createMcpAgent({ server: opts.server, command, args: rest, log });
      definition = bridge.agent;
      close = bridge.close;
    } else {
      const make = builtinAgents[name];
      if (!make) throw new UsageError(`unknown agent ${JSON.stringify(name)}`);
      definition = make();
    }

    const bus = await connectBus({
      ...busOptionsFromEnv(),
      natsUrl: config.natsUrl,
      explicit: config.natsExplicit,
      name: `agent-${definition.name}`,
      log,
    });
    const running = await runAgent(definition, {
      bus,
      log,
      ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
      ...(opts.instance ? { instanceId: opts.instance } : {}),
      ...(opts.graceMs !== undefined ? { drainGraceMs: opts.graceMs } : {}),
    });
    // Standalone: no registry link yet (see sdk/agent/registry-link.ts).
    console.log(
      `agent ${running.agentId} ready: ${running.card.skills.map((s) => s.capability).join(", ")}`,
    );
    await running.stopped;
    await bus.close({ graceMs: 0 });
    await close();
    return 0;
  },
};

function parseFlags(flags: string[]): {
  concurrency?: number;
  instance?: string;
  graceMs?: number;
  server?: string;
} {
  const out: { concurrency?: number; instance?: string; graceMs?: number; server?: string } = {};
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i];
    const value = flags[i + 1];
    if (value === undefined) throw new UsageError(`${flag} needs a value`);
    i++;
    switch (flag) {
      case "--concurrency":
        out.concurrency = positive(flag, value);
        break;
      case "--grace-ms":
        out.graceMs = positive(flag, value);
        break;
      case "--instance":
        out.instance = value;
        break;
      case "--server":
        out.server = value;
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  return out;
}

function positive(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive integer`);
  return n;
}
