import { access } from "node:fs/promises";
import { Gauge } from "prom-client";
import { builtinAgents } from "../../agents/builtin.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { isTlsUrl } from "../../lib/bus/nats-tls.js";
import { loadConfig } from "../../lib/config/config.js";
import { defaultMetricsPorts, settings } from "../../lib/config/settings.js";
import { Code, isMeshError } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import { serveHealthHttp } from "../../lib/mesh/health-http.js";
import { startSiemExport, stopSiemExport } from "../../lib/siem/siem.js";
import { meshMetrics } from "../../lib/telemetry/metrics.js";
import { startTracing } from "../../lib/telemetry/tracing.js";
import { certPaths, ensureIdentities } from "../../lib/tls/index.js";
import { connectAgent } from "../../sdk/agent/connect-agent.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { type RunningAgent, runAgent } from "../../sdk/agent/run-agent.js";
import { type Command, UsageError } from "../command.js";
import { loadAgentFile } from "./agent-file.js";

const usage = `agentmesh agent <name> [--concurrency N] [--instance ID] [--grace-ms MS]
agentmesh agent run <file.js|file.ts> [--export NAME] [options as above]
agentmesh agent mcp --server NAME [--concurrency N] -- <command> [args...]

Runs a built-in agent, or the agent a file defines (its default export, or its
one named export, made by defineAgent from "agentmesh/sdk"), as its own process
until SIGTERM/SIGINT (then drains).
It registers with the registry over mTLS as identity agent-<name> (certificate
under AGENTMESH_CERT_DIR/agent-<name>, AGENTMESH_AGENT_IDENTITY for another
identity; issued by the dev CA when one is there; the identity needs a grant of
its capabilities in policies/data.json)
at AGENTMESH_REGISTRY_ADDR (default 127.0.0.1:<registry port>);
--no-registry runs it unregistered (jobs still flow, the planner cannot see it).
/healthz, /readyz (registered and consuming) and /metrics on AGENTMESH_HOST:
AGENTMESH_METRICS_PORT (default a free port, printed when ready).
Agents: ${Object.keys(builtinAgents).join(", ")}, mcp.
Bus: NATS_URL (JetStream; falls back to in-process only when unset; tls://
means mutual TLS with the agent's certificate; plaintext only to loopback or
with AGENTMESH_NATS_PLAINTEXT=true),
AGENTMESH_BUS_PREFIX, AGENTMESH_BUS_ACK_WAIT_MS, AGENTMESH_BUS_MAX_DELIVER.
On a tls:// NATS an agent started before the executor waits for the job
stream (the executor creates it). Exits 78 when the NATS permissions refuse
one of its capabilities (the message names the grant to add).
http: AGENTMESH_HTTP_ALLOW_HOSTS; shell: AGENTMESH_SHELL_ALLOW.`;

/**
 * The exit code when the mesh refuses what the agent is configured to do
 * (EX_CONFIG: its NATS identity may not consume a capability's jobs). A
 * restart cannot help until the grants and the NATS configuration change.
 */
export const notPermittedExitCode = 78;

/** `agentmesh agent <name>`: one built-in agent as its own process. */
export const agent: Command = {
  name: "agent",
  summary: "run a built-in agent (text, data, http, shell, util, mcp) as its own process",
  usage,
  async run(args) {
    const dashdash = args.indexOf("--");
    const own = dashdash >= 0 ? args.slice(0, dashdash) : args;
    const serverCommand = dashdash >= 0 ? args.slice(dashdash + 1) : [];
    const [name, ...rest] = own;
    if (!name) throw new UsageError("which agent?");
    // `agent run <file>`: the user's agent; the file is the first argument after "run".
    const file = name === "run" ? rest[0] : undefined;
    if (name === "run" && !file) throw new UsageError("agent run needs the agent's file");
    const opts = parseFlags(file ? rest.slice(1) : rest);
    const config = loadConfig();

    let close = async () => {};
    let definition: AgentDefinition;
    let identity: string;
    if (file) {
      definition = await loadAgentFile(file, opts.exportName);
      identity = settings.agentIdentity.read() ?? `agent-${definition.name}`;
    } else if (name === "mcp") {
      if (!opts.server) throw new UsageError("mcp needs --server NAME");
      const [command, ...args] = serverCommand;
      if (!command) throw new UsageError("mcp needs the server command after --");
      identity = `agent-mcp-${opts.server}`;
      const { createMcpAgent } = await import("../../agents/mcp.js");
      const bridge = await createMcpAgent({
        server: opts.server,
        command,
        args,
        log: createLogger({ name: identity }),
      });
      definition = bridge.agent;
      close = bridge.close;
    } else {
      const make = builtinAgents[name];
      if (!make) throw new UsageError(`unknown agent ${JSON.stringify(name)}`);
      definition = make();
      identity = `agent-${name}`;
    }
    const log = createLogger({ name: identity });

    // Probes answer from the start: alive while waiting for the registry, ready once
    // registered and consuming, not ready again from the moment it drains.
    let running: RunningAgent | undefined;
    let bus: JobBus | undefined;
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
      // Why not ready yet, when it is something to wait for (a stream the executor creates).
      detail: () => {
        const waiting = bus?.waitingFor?.();
        return waiting ? [`waiting for ${waiting}`] : [];
      },
    });
    const onSignal = () => {
      draining = true;
      // Before the agent runs (still waiting for the registry) there is nothing to drain.
      if (running === undefined) process.exit(143);
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    // With OTEL_EXPORTER_OTLP_ENDPOINT set, each job's handler span joins its goal's trace.
    const tracing = await startTracing({ serviceName: `agentmesh-agent-${definition.name}` });
    // Security events (the built-in agents' sandbox refusals) to the configured SIEM sink.
    const siem = startSiemExport(process.env, {
      logDir: config.logDir,
      onError: (err) => log.warn({ err }, "SIEM sink failed; events kept and retried"),
    });
    try {
      await runUntilStopped();
    } catch (err) {
      // Refused by the mesh (e.g. the NATS permissions): say what to change, and do not loop.
      if (isMeshError(err) && err.code === Code.PermissionDenied && !err.retryable) {
        console.error(`agentmesh agent: ${err.message}`);
        return notPermittedExitCode;
      }
      throw err;
    } finally {
      draining = true;
      await http.close();
      await tracing?.shutdown();
      await stopSiemExport(siem);
    }
    return 0;

    async function runUntilStopped() {
      if (!opts.noRegistry || isTlsUrl(config.natsUrl)) await issueFromDevCa(config, identity);
      const link = await connectAgent(definition.name, {
        identity,
        register: !opts.noRegistry,
        log,
      });
      bus = link.bus;
      try {
        running = await runAgent(definition, {
          bus: link.bus,
          log,
          registry: link.registry,
          ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
          ...(opts.instance ? { instanceId: opts.instance } : {}),
          ...(opts.graceMs !== undefined ? { drainGraceMs: opts.graceMs } : {}),
        });
      } catch (err) {
        // Nothing may keep the process alive after a failed start.
        await link.close().catch(() => undefined);
        await close();
        throw err;
      }
      console.log(
        `agent ${running.agentId} ready: ${running.card.skills.map((s) => s.capability).join(", ")} (health ${http.url}) as ${identity}, ${definition.name} ${definition.version}`,
      );
      await running.stopped;
      await link.close();
      await close();
    }
  },
};

/** Issues the identity's certificate from the dev CA when one is there (else it must be mounted). */
async function issueFromDevCa(config: ReturnType<typeof loadConfig>, identity: string) {
  try {
    await access(certPaths(config.certDir, "ca").key);
  } catch {
    return;
  }
  await ensureIdentities({
    certDir: config.certDir,
    names: [identity],
    trustDomain: config.trustDomain,
    namespace: config.namespace,
  });
}

interface AgentFlags {
  concurrency?: number;
  instance?: string;
  graceMs?: number;
  server?: string;
  exportName?: string;
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
      case "--export":
        out.exportName = value;
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
