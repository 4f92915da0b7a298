/**
 * An in-process mesh for end-to-end tests: real mTLS between the components
 * (a throwaway dev CA), the compiled policy, a private PostgreSQL schema and
 * a private NATS JetStream prefix, the control-plane components started
 * through `lib/mesh` exactly as `agentmesh serve` does, and built-in agents
 * registered with the registry over mTLS.
 *
 * @example
 * const mesh = await startTestMesh({ databaseUrl: pg.url, natsUrl: nats.url, agents: [utilAgent] });
 * const { goal } = await mesh.executor.submitGoal({ tenantId: mesh.tenantId, kind: "echo" });
 * await mesh.stop();
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { pino } from "pino";
import { loadComponent } from "../../cli/commands/serve.js";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { grpcRegistryLink } from "../../sdk/agent/grpc-registry-link.js";
import { type RunningAgent, runAgent } from "../../sdk/agent/run-agent.js";
import { busNames } from "../bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../bus/jetstream-bus.js";
import { loadConfig, type MeshConfig } from "../config/config.js";
import { serviceNames } from "../identity/spiffe.js";
import { createLogger } from "../log/logger.js";
import { createLazyClient } from "../mesh/lazy-client.js";
import { type ComponentName, type MeshRuntime, openMeshRuntime } from "../mesh/mesh-runtime.js";
import { type RunningComponent, startComponent } from "../mesh/start-component.js";
import type { Client } from "../rpc/client.js";
import { runId } from "../testing/infra.js";
import { ensureIdentities } from "../tls/dev-ca.js";

/** Identities every test mesh has certificates for. */
export const testIdentities = [
  ...serviceNames,
  "agent-util",
  "agent-text",
  "agent-data",
  "agent-test",
];

export interface TestMeshOptions {
  databaseUrl: string;
  natsUrl: string;
  /** Components run in this process. Default all four (those present in this build). */
  components?: ComponentName[];
  /** Executor replicas in this process. Default 1 (0 when "executor" is not in `components`). */
  executors?: number;
  /** Agents run in this process, each registered over mTLS as `agent-<name>`. */
  agents?: { definition: AgentDefinition; identity?: string; instanceId?: string }[];
  /** Extra environment for the config (ports default to 0 = free ports). */
  env?: Record<string, string>;
}

export interface TestMesh {
  readonly tenantId: string;
  readonly config: MeshConfig;
  readonly runtime: MeshRuntime;
  readonly schema: string;
  readonly prefix: string;
  readonly certDir: string;
  readonly components: RunningComponent[];
  readonly agents: RunningAgent[];
  /** ExecutorService as the `cli` identity (granted everything). */
  readonly executor: Client<typeof ExecutorService>;
  /** A client of `service` on component `name` calling as `identity`. */
  clientAs<S extends DescService>(
    service: S,
    name: ComponentName,
    identity: string,
  ): Promise<Client<S>>;
  /** Starts another agent. */
  startAgent(definition: AgentDefinition, instanceId?: string): Promise<RunningAgent>;
  /** Environment for a child process joining this mesh. */
  childEnv(): Record<string, string>;
  stop(): Promise<void>;
}

export async function startTestMesh(options: TestMeshOptions): Promise<TestMesh> {
  const home = await mkdtemp(join(tmpdir(), "agentmesh-e2e-"));
  const schema = runId("e2e");
  const prefix = runId("e2e");
  const env: Record<string, string> = {
    AGENTMESH_HOME: home,
    AGENTMESH_POLICY: resolve("bundles/agentmesh.tar.gz"),
    DATABASE_URL: options.databaseUrl,
    NATS_URL: options.natsUrl,
    AGENTMESH_REGISTRY_PORT: "0",
    AGENTMESH_PLANNER_PORT: "0",
    AGENTMESH_EXECUTOR_PORT: "0",
    AGENTMESH_LEARNING_PORT: "0",
    AGENTMESH_METRICS_PORT: "0",
    ...options.env,
  };
  const config = loadConfig(env);
  await ensureIdentities({ certDir: config.certDir, names: testIdentities });
  // stderr: benchmarks print their JSON on stdout, and a log line there would corrupt it.
  const log = createLogger({ name: "e2e", destination: pino.destination(2) });
  const runtime = await openMeshRuntime({
    config,
    logger: log,
    store: { databaseUrl: options.databaseUrl, schema },
    bus: {
      natsUrl: options.natsUrl,
      explicit: true,
      prefix,
      ackWaitMs: 5_000,
      duplicateWindowMs: 120_000,
    },
    decisionLog: false,
    httpPort: 0,
  });
  const tenantId = "acme";
  await runtime.store.tenants.create({ id: tenantId, displayName: "Acme" });
  const components: RunningComponent[] = [];
  const agents: RunningAgent[] = [];
  const lazies: { close(): void }[] = [];

  // Agents report a failed attempt at once on the shipped max deliveries: what the tests
  // see is the executor's retry policy (ADR-004).
  const agentBus = await createJetStreamBus({
    servers: options.natsUrl,
    prefix,
    ackWaitMs: 5_000,
  });
  const startAgent = async (definition: AgentDefinition, instanceId?: string) => {
    const identity = `agent-${definition.name}`;
    const lazy = createLazyClient(
      RegistryService,
      () => runtime.endpoint("registry"),
      await runtime.certs(testIdentities.includes(identity) ? identity : "agent-test"),
    );
    lazies.push(lazy);
    const running = await runAgent(definition, {
      bus: agentBus,
      registry: grpcRegistryLink(lazy.client),
      handleSignals: false,
      drainGraceMs: 500,
      ...(instanceId ? { instanceId } : {}),
    });
    agents.push(running);
    return running;
  };

  const mesh: TestMesh = {
    tenantId,
    config,
    runtime,
    schema,
    prefix,
    certDir: config.certDir,
    components,
    agents,
    executor: undefined as unknown as Client<typeof ExecutorService>,
    async clientAs(service, name, identity) {
      const lazy = createLazyClient(
        service,
        () => runtime.endpoint(name),
        await runtime.certs(identity),
      );
      lazies.push(lazy);
      return lazy.client;
    },
    startAgent,
    childEnv() {
      const out: Record<string, string> = {
        ...env,
        AGENTMESH_DB_SCHEMA: schema,
        AGENTMESH_BUS_PREFIX: prefix,
        AGENTMESH_BUS_ACK_WAIT_MS: "5000",
        AGENTMESH_DEV_CERTS: "false",
      };
      for (const c of componentNamesRunning()) {
        out[`AGENTMESH_${c.toUpperCase()}_ADDR`] = runtime.endpoint(c).address;
      }
      return out;
    },
    async stop() {
      await Promise.allSettled(agents.map((a) => a.stop("test over")));
      await Promise.allSettled(components.map((c) => c.stop()));
      await agentBus.close({ graceMs: 0 });
      for (const l of lazies) l.close();
      await runtime.store.orm.em
        .fork()
        .execute(`drop schema if exists "${schema}" cascade`)
        .catch(() => undefined);
      await runtime.close();
      const nc = await connectNats(options.natsUrl);
      const jsm = await jetstreamManager(nc);
      for (const s of Object.values(busNames(prefix).streams)) {
        await jsm.streams.delete(s).catch(() => false);
      }
      await nc.close();
      await rm(home, { recursive: true, force: true });
    },
  };
  const componentNamesRunning = () => [...new Set(components.map((c) => c.name))];
  try {
    const wanted = options.components ?? ["registry", "learning", "planner", "executor"];
    const replicas = options.executors ?? (wanted.includes("executor") ? 1 : 0);
    for (const name of wanted) {
      const definition = await loadComponent(name);
      const count = name === "executor" ? replicas : 1;
      for (let i = 0; i < count; i++) {
        components.push(await startComponent(definition, { runtime, port: 0 }));
      }
    }
    const lazy = createLazyClient(
      ExecutorService,
      () => runtime.endpoint("executor"),
      await runtime.certs("cli"),
    );
    lazies.push(lazy);
    (mesh as { executor: Client<typeof ExecutorService> }).executor = lazy.client;
    for (const a of options.agents ?? []) await startAgent(a.definition, a.instanceId);
    return mesh;
  } catch (err) {
    await mesh.stop().catch(() => undefined);
    throw err;
  }
}
