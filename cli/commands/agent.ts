import { access } from "node:fs/promises";
import { Gauge } from "prom-client";
import { builtinAgents } from "../../agents/builtin.js";
import { busOptionsFromEnv, connectBus } from "../../lib/bus/index.js";
import { isTlsUrl } from "../../lib/bus/nats-tls.js";
import { loadConfig } from "../../lib/config/config.js";
import { defaultMetricsPorts, settings } from "../../lib/config/settings.js";
import { spiffeId } from "../../lib/identity/spiffe.js";
import { createLogger } from "../../lib/log/logger.js";
import { serveHealthHttp } from "../../lib/mesh/health-http.js";
import { createChannel, type MeshChannel } from "../../lib/rpc/index.js";
import { meshMetrics } from "../../lib/telemetry/metrics.js";
import {
  type CertWatcher,
  certPaths,
  ensureIdentities,
  watchCertificates,
} from "../../lib/tls/index.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { grpcRegistryLink } from "../../sdk/agent/grpc-registry-link.js";
import { noopRegistryLink } from "../../sdk/agent/registry-link.js";
import { type RunningAgent, runAgent } from "../../sdk/agent/run-agent.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh agent <name> [--concurrency N] [--instance ID] [--grace-ms MS]
agentmesh agent mcp --server NAME [--concurrency N] -- <command> [args...]

Runs a built-in agent as its own process until SIGTERM/SIGINT (then drains).
It registers with the registry over mTLS as identity agent-<name> (certificate
under AGENTMESH_CERT_DIR/agent-<name>; issued by the dev CA when one is there)
at AGENTMESH_REGISTRY_ADDR (default 127.0.0.1:<registry port>);
--no-registry runs it unregistered (jobs still flow, the planner cannot see it).
/healthz, /readyz (registered and consuming) and /metrics on AGENTMESH_HOST:
AGENTMESH_METRICS_PORT (default a free port, printed when ready).
Agents: ${Object.keys(builtinAgents).join(", ")}, mcp.
Bus: NATS_URL (JetStream; falls back to in-process only when unset; tls://
means mutual TLS with the agent's certificate; plaintext only to loopback or
with AGENTMESH_NATS_PLAINTEXT=true),
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
      const { createMcpAgent } = await import("../../agents/mcp.js");
      const bridge = await createMcpAgent({ server: opts.server, command, args: rest, log });
      definition = bridge.agent;
      close = bridge.close;
    } else {
      const make = builtinAgents[name];
      if (!make) throw new UsageError(`unknown agent ${JSON.stringify(name)}`);
      definition = make();
    }

    // Probes answer from the start: alive while waiting for the registry, ready once
    // registered and consuming, not ready again from the moment it drains.
    let running: RunningAgent | undefined;
    let draining = false;
    const ready = () => running !== undefined && !draining && running.ready;
    const metrics = meshMetrics();
    new Gauge({
      name: "agentmesh_agent_ready",
      help: "1 while the agent holds its registry lease and consumes jobs.",
      registers: [metrics.registry],
      collect() {
        this.set(ready() ? 1 : 0);
      },
    });
    new Gauge({
      name: "agentmesh_agent_jobs_in_flight",
      help: "Jobs this agent process is running now.",
      registers: [metrics.registry],
      collect() {
        this.set(running?.inFlight ?? 0);
      },
    });
    const http = await serveHealthHttp({
      port: config.ports.metrics ?? defaultMetricsPorts.agent,
      host: config.host,
      registry: metrics.registry,
      ready,
    });
    const onSignal = () => {
      draining = true;
      // Before the agent runs (still waiting for the registry) there is nothing to drain.
      if (running === undefined) process.exit(143);
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    try {
      await runUntilStopped();
    } finally {
      draining = true;
      await http.close();
    }
    return 0;

    async function runUntilStopped() {
      const identity = `agent-${name === "mcp" ? `mcp-${opts.server}` : name}`;
      const certs =
        isTlsUrl(config.natsUrl) || !opts.noRegistry
          ? await agentCertificates(config, identity)
          : undefined;
      const bus = await connectBus({
        ...busOptionsFromEnv(),
        natsUrl: config.natsUrl,
        explicit: config.natsExplicit,
        name: `agent-${definition.name}`,
        // Mutual TLS on a tls:// NATS with the same certificate as gRPC; results bound to this identity.
        identity: { name: identity, ...(certs ? { certs } : {}) },
        log,
      });
      const channel = certs && !opts.noRegistry ? registryChannel(config, certs) : undefined;
      running = await runAgent(definition, {
        bus,
        log,
        registry: channel ? grpcRegistryLink(channel) : noopRegistryLink(),
        ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
        ...(opts.instance ? { instanceId: opts.instance } : {}),
        ...(opts.graceMs !== undefined ? { drainGraceMs: opts.graceMs } : {}),
      });
      console.log(
        `agent ${running.agentId} ready: ${running.card.skills.map((s) => s.capability).join(", ")} (health ${http.url})`,
      );
      await running.stopped;
      channel?.close();
      certs?.close();
      await bus.close({ graceMs: 0 });
      await close();
    }
  },
};

/** The agent's certificate files, issued by the dev CA when one is there (else mounted ones). */
async function agentCertificates(
  config: ReturnType<typeof loadConfig>,
  identity: string,
): Promise<CertWatcher> {
  try {
    await access(certPaths(config.certDir, "ca").key);
    await ensureIdentities({
      certDir: config.certDir,
      names: [identity],
      trustDomain: config.trustDomain,
      namespace: config.namespace,
    });
  } catch {
    // no dev CA: the certificate must already be mounted
  }
  return watchCertificates({ dir: certPaths(config.certDir, identity).dir });
}

/** The mTLS channel to the registry, proving the agent's identity with its certificate. */
function registryChannel(config: ReturnType<typeof loadConfig>, certs: CertWatcher): MeshChannel {
  return createChannel({
    address: settings.registryAddr.read() ?? `127.0.0.1:${config.ports.registry}`,
    certs,
    server: spiffeId({
      name: "registry",
      trustDomain: config.trustDomain,
      namespace: config.namespace,
    }),
  });
}

interface AgentFlags {
  concurrency?: number;
  instance?: string;
  graceMs?: number;
  server?: string;
  noRegistry?: boolean;
}

function parseFlags(flags: string[]): AgentFlags {
  const out: AgentFlags = {};
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i];
    if (flag === "--no-registry") {
      out.noRegistry = true;
      continue;
    }
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
