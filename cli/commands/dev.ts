/**
 * `agentmesh dev` (what `npm start` runs): the whole mesh from one command —
 * registry, planner, executor and learning (each its own mTLS gRPC server
 * with the policy checked on every call) and the gateway in this process,
 * and the built-in util, text and data agents registered with the registry
 * over mTLS. Dev certificates are issued under `.agentmesh/certs`; PostgreSQL
 * is embedded under `.agentmesh/data` unless DATABASE_URL is set; the bus is
 * NATS JetStream when NATS answers at NATS_URL, else in-process.
 *
 * On NATS, each agent is its own supervised process (`dev-agents.ts`), so no
 * agent failure can take the mesh down. On the in-process bus the agents
 * must share this process; the untrusted code they run (JSONata) still runs
 * in the data agent's sandbox processes.
 */
import { relative } from "node:path";
import { ensureBootstrapAdmin } from "../../gateway/bootstrap.js";
import { meshGatewayOptions, startGateway } from "../../gateway/start-gateway.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { loadConfig } from "../../lib/config/config.js";
import { createLogger } from "../../lib/log/logger.js";
import { createLazyClient } from "../../lib/mesh/lazy-client.js";
import { componentNames, openMeshRuntime } from "../../lib/mesh/mesh-runtime.js";
import { onShutdownSignal } from "../../lib/mesh/shutdown.js";
import { type RunningComponent, startComponent } from "../../lib/mesh/start-component.js";
import { startTracing } from "../../lib/telemetry/tracing.js";
import { grpcRegistryLink } from "../../sdk/agent/grpc-registry-link.js";
import type { Command } from "../command.js";
import { type SupervisedAgent, superviseAgent } from "./dev-agents.js";
import { loadComponent } from "./serve.js";

/** Built-in agents the embedded mesh runs. */
const devAgents = ["util", "text", "data"] as const;

export const dev: Command = {
  name: "dev",
  summary: "run the whole mesh in one process on embedded defaults (npm start)",
  usage:
    "agentmesh dev\n\nEverything in one process; Ctrl+C stops it. LOG_LEVEL=info shows the logs.",
  async run(args) {
    if (args.length > 0) {
      console.error(`agentmesh dev takes no arguments (got ${args.join(" ")})`);
      return 2;
    }
    const started = Date.now();
    const config = loadConfig();
    // The summary below is the interface; logs are for when something goes wrong.
    const log = createLogger({ name: "dev", level: process.env.LOG_LEVEL ?? "warn" });
    console.log("agentmesh dev: starting the embedded mesh ...");
    // Spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; flushed last on stop.
    const tracing = await startTracing({ serviceName: "agentmesh-dev" });
    const runtime = await openMeshRuntime({
      config,
      logger: log,
      devCertificates: true,
      identities: [...componentNames, "gateway", "cli", ...devAgents.map((a) => `agent-${a}`)],
    }).catch(async (err: unknown) => {
      await tracing?.shutdown().catch(() => undefined);
      throw err;
    });
    const stops: (() => Promise<void>)[] = [async () => tracing?.shutdown(), () => runtime.close()];
    const stopAll = async () => {
      for (const s of stops.reverse()) await s().catch(() => undefined);
    };
    let early: Promise<DevAgent[]> | undefined;
    try {
      // Everything starts at once; each start registers its stop as it succeeds.
      const running = <T>(starting: Promise<T>, stop: (t: T) => Promise<void>) =>
        starting.then((t) => {
          stops.push(() => stop(t));
          return t;
        });
      const agentProcesses = () =>
        settled(
          devAgents.map((name) => running(startAgentProcess(runtime, name), (a) => a.stop())),
        );
      // Agent processes boot (load the CLI, connect to NATS) while the components start, and
      // register once the registry answers; only a registry port picked at start (0) makes them wait.
      early =
        runtime.bus.kind === "jetstream" && config.ports.registry !== 0
          ? agentProcesses()
          : undefined;
      early?.catch(() => undefined);
      const [admin, components, gateway] = await settled([
        // Tenant "default" and a platform-admin API key in <home>/admin.key (0600, never printed).
        ensureBootstrapAdmin({ store: runtime.store, home: config.home, secrets: runtime.secrets }),
        settled(
          (["registry", "learning", "planner", "executor"] as const).map((name) =>
            running(
              loadComponent(name).then((definition) => startComponent(definition, { runtime })),
              (c) => c.stop(),
            ),
          ),
        ),
        running(startDevGateway(runtime), (g) => g.close()),
      ]);
      // In-process agents register with the registry, so they start once it runs.
      const agents = await (early ??
        (runtime.bus.kind === "jetstream"
          ? agentProcesses()
          : settled(
              devAgents.map((name) => running(startDevAgent(runtime, name, log), (a) => a.stop())),
            )));

      const readyMs = Date.now() - started;
      printSummary({
        runtime,
        components,
        gateway,
        agents,
        readyMs,
        config,
        keyPath: admin.keyPath,
      });
      await onShutdownSignal(async () => {
        console.log("\nagentmesh dev: stopping ...");
        await stopAll();
      });
      console.log("agentmesh dev: stopped.");
      return 0;
    } catch (err) {
      // Agent processes still starting register their stops first.
      await early?.catch(() => undefined);
      await stopAll();
      throw err;
    }
  },
};

type Runtime = Awaited<ReturnType<typeof openMeshRuntime>>;

interface DevGateway {
  url: string;
  close(): Promise<void>;
}

/** The public edge: Connect, gRPC and gRPC-Web with API keys, onto the components above. */
async function startDevGateway(runtime: Runtime): Promise<DevGateway> {
  return startGateway({
    ...(await meshGatewayOptions(runtime)),
    host: runtime.config.host,
    port: runtime.config.ports.gateway,
    log: runtime.log.child({ component: "gateway" }),
  });
}

interface DevAgent {
  name: string;
  agentId: string;
  capabilities: string[];
  /** Set when the agent runs as its own process. */
  pid?: number;
  /** Its process's health endpoint. */
  health?: string;
  stop(): Promise<void>;
}

/** One built-in agent as a supervised child process on the same NATS and registry. */
async function startAgentProcess(
  runtime: Runtime,
  name: (typeof devAgents)[number],
): Promise<DevAgent> {
  const { config } = runtime;
  const supervised: SupervisedAgent = superviseAgent({
    name,
    env: {
      NATS_URL: config.natsUrl,
      AGENTMESH_BUS_PREFIX: runtime.bus.options.prefix,
      AGENTMESH_REGISTRY_ADDR: runtime.endpoint("registry").address,
      AGENTMESH_CERT_DIR: config.certDir,
      // Each agent's own metrics and health port, wherever one is free.
      AGENTMESH_METRICS_PORT: "0",
      // Quieter than dev itself: dev reports exits and restarts; LOG_LEVEL shows everything.
      LOG_LEVEL: process.env.LOG_LEVEL ?? "error",
    },
  });
  try {
    const { agentId, capabilities, health } = await supervised.ready;
    return {
      name,
      agentId,
      capabilities,
      ...(supervised.pid ? { pid: supervised.pid } : {}),
      ...(health ? { health } : {}),
      stop: () => supervised.stop(),
    };
  } catch (err) {
    await supervised.stop();
    throw err;
  }
}

async function startDevAgent(
  runtime: Runtime,
  name: (typeof devAgents)[number],
  log: Runtime["log"],
): Promise<DevAgent> {
  const [{ builtinAgents }, { runAgent }] = await Promise.all([
    import("../../agents/builtin.js"),
    import("../../sdk/agent/run-agent.js"),
  ]);
  const make = builtinAgents[name];
  if (!make) throw new Error(`no built-in agent ${name}`);
  const registry = createLazyClient(
    RegistryService,
    () => runtime.endpoint("registry"),
    await runtime.certs(`agent-${name}`),
  );
  const agent = await runAgent(make(), {
    bus: runtime.bus,
    registry: grpcRegistryLink(registry.client),
    handleSignals: false,
    log: log.child({ agent: name }),
    // On dev's own /metrics.
    metrics: runtime.metrics.registry,
  });
  return {
    name,
    agentId: agent.agentId,
    capabilities: agent.card.skills.map((s) => s.capability),
    stop: async () => {
      await agent.stop("shutdown");
      registry.close();
    },
  };
}

/** Like `Promise.all`, but waits for every promise to settle before throwing the first failure. */
async function settled<T extends readonly unknown[] | []>(
  values: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const results = await Promise.allSettled(values);
  for (const r of results) if (r.status === "rejected") throw r.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as never;
}

function printSummary(s: {
  runtime: Runtime;
  components: RunningComponent[];
  gateway: DevGateway;
  agents: DevAgent[];
  readyMs: number;
  config: ReturnType<typeof loadConfig>;
  keyPath: string;
}): void {
  const { runtime, config } = s;
  const rssMb = Math.round(process.memoryUsage().rss / 1024 / 1024);
  const rel = (p: string) => relative(process.cwd(), p) || ".";
  const lines = [
    "",
    `agentmesh dev: ready in ${(s.readyMs / 1000).toFixed(1)} s (RSS ${rssMb} MB)`,
    "",
  ];
  for (const c of s.components) {
    lines.push(`  ${c.name.padEnd(9)} ${c.address.padEnd(16)} mTLS as ${c.spiffeId}`);
  }
  lines.push(
    `  ${"gateway".padEnd(9)} ${s.gateway.url.padEnd(16)} Connect/gRPC/gRPC-Web, dashboard at /`,
  );
  for (const a of s.agents) {
    const where = a.pid ? `  (pid ${a.pid}${a.health ? `, health ${a.health}` : ""})` : "";
    lines.push(`  agent     ${a.name.padEnd(16)} ${a.capabilities.join(", ")}${where}`);
  }
  const bus =
    runtime.bus.kind === "jetstream"
      ? `NATS JetStream at ${config.natsUrl} (prefix ${runtime.bus.options.prefix}${
          runtime.bus.identity === undefined ? "; plaintext, dev only" : ""
        })`
      : `in-process (NATS did not answer at ${config.natsUrl})`;
  lines.push(
    `  bus       ${bus}`,
    `  database  ${runtime.store.location}`,
    `  certs     ${rel(config.certDir)} (dev CA; trust domain ${config.trustDomain})`,
    `  policy    ${rel(config.policyPath)}`,
    `  metrics   ${runtime.http?.url ?? "off"}/metrics  (/healthz, /readyz)`,
    `  api key   ${rel(s.keyPath)} (platform admin of tenant "default"; the CLI reads it)`,
    "",
    "Submit a sample goal through the gateway and watch it:",
    "",
    `  node bin/agentmesh.js goal submit --kind analyze-text --input '${JSON.stringify({ text: "agentmesh plans goals. Agents run the steps in parallel. The executor merges the results." })}' --watch`,
    "",
    "Stop with Ctrl+C.",
  );
  console.log(lines.join("\n"));
}
