/**
 * The mesh the chaos suite breaks: every part its own process, as an
 * operator runs it — `agentmesh serve <registry|planner|learning|executor>`
 * (two executors), the gateway in front of them, and built-in agents
 * (`agentmesh agent <util|text|data>` with a side-effect ledger,
 * `ledger-agent.ts`) — each with its own certificate from one dev CA, on
 * fixed ports so a restarted process comes back where its clients look, over
 * a NATS and a PostgreSQL the scenario owns. Nothing is tuned: every process
 * runs with the shipped defaults unless a scenario passes `env` for the
 * setting it is about.
 *
 * Goals enter only through the gateway (`client(0)`), with an API key of
 * tenant `acme` (tenant.admin); the gateway and every component reach the
 * executors as one list of addresses (round robin, a dead replica left out).
 *
 * To look into a run: `CHAOS_KEEP=1` keeps its folder (`logs/processes.log`,
 * the ledger) and `CHAOS_LOG_LEVEL=info` logs more than warnings.
 *
 * @example
 * const mesh = await startChaosMesh({ databaseUrl: pg.url, natsUrl: nats.url });
 * await mesh.kill("agent-util#0");
 * await mesh.startAgent("util");
 * await mesh.stop();
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats } from "../../lib/bus/jetstream-bus.js";
import { serviceNames, spiffeId } from "../../lib/identity/spiffe.js";
import { createLazyClient, type LazyClient } from "../../lib/mesh/lazy-client.js";
import type { Client } from "../../lib/rpc/client.js";
import { newApiKey } from "../../lib/store/api-key-secret.js";
import { openStore, type Store } from "../../lib/store/store.js";
import { freePort } from "../../lib/testing/free-port.js";
import { runId } from "../../lib/testing/infra.js";
import { waitFor } from "../../lib/testing/wait-for.js";
import { type CertWatcher, watchCertificates } from "../../lib/tls/cert-watcher.js";
import { certPaths, ensureIdentities } from "../../lib/tls/dev-ca.js";
import { createClient, type MeshClient } from "../../sdk/client/create-client.js";

export type ServeName = "registry" | "planner" | "executor" | "learning";
export type AgentKind = "util" | "text" | "data";

/** Every identity the chaos mesh issues certificates for. */
export const chaosIdentities = [...serviceNames, "agent-util", "agent-text", "agent-data"];

export interface ChaosMeshOptions {
  databaseUrl: string;
  natsUrl: string;
  /** Executor replicas. Default 2. */
  executors?: number;
  /** Agent processes by kind. Default two util (the slow step's), one text, one data. */
  agents?: Partial<Record<AgentKind, number>>;
  /** Policy bundle to run with (a copy the scenario may swap). Default the committed one. */
  policyPath?: string;
  /** Settings for every process: only the one a scenario is about. */
  env?: Record<string, string>;
}

export interface ChaosMesh {
  readonly home: string;
  readonly certDir: string;
  readonly schema: string;
  readonly prefix: string;
  readonly tenantId: string;
  readonly ledger: string;
  readonly env: Record<string, string>;
  /** Gateway replicas, by index. */
  readonly gateways: number;
  /** The public API through gateway `i`, as tenant acme's admin key. */
  client(i: number): MeshClient;
  /** Address of executor replica `i` (internal, mTLS). */
  executorAddress(i: number): string;
  /** The executor over mTLS as the `cli` identity (for policy scenarios). */
  executor(i?: number): Client<typeof ExecutorService>;
  /** Starts (or restarts) `registry`, `planner`, `learning`, `executor#i` or `gateway#i`; resolves when ready. */
  start(key: string): Promise<void>;
  /** Starts an agent process; resolves with its key (`agent-util#2`) once it is registered. */
  startAgent(kind: AgentKind): Promise<string>;
  /** kill -9 a process and wait for it to die; its pid is remembered (`killedPids`). */
  kill(key: string): Promise<void>;
  /** Sends a signal (SIGSTOP, SIGCONT) without waiting. */
  signal(key: string, signal: NodeJS.Signals): void;
  /** Keys of running agents (of one kind). */
  agentKeys(kind?: AgentKind): string[];
  /** Pid of a running process. */
  pid(key: string): number;
  /** Registry instance id of a running agent; instance id of a running component. */
  instanceOf(key: string): string;
  /** Pids the scenario killed with SIGKILL. */
  readonly killedPids: Set<number>;
  /** Running agents that have no LIVE registration with a lease in the future. */
  agentsNotLive(): Promise<string[]>;
  /** The mesh's tables, for the audit. */
  store(): Promise<Store>;
  stop(): Promise<void>;
}

interface Proc {
  child: ChildProcess;
  out: string;
  /** Registry instance id (agents) or the component's instance id (from its ready line). */
  instance?: string;
}

const tsx = ["--import", "tsx"];

export async function startChaosMesh(options: ChaosMeshOptions): Promise<ChaosMesh> {
  const started = Date.now();
  const home = await mkdtemp(join(tmpdir(), "chaos-mesh-"));
  const certDir = join(home, "certs");
  const ledger = join(home, "ledger");
  await mkdir(join(home, "logs"), { recursive: true });
  const schema = runId("chaos");
  const prefix = runId("chaos");
  const tenantId = "acme";
  const executors = options.executors ?? 2;
  const ports: Record<string, number> = {};
  for (const n of ["registry", "planner", "learning"]) ports[n] = await freePort();
  for (let i = 0; i < executors; i++) ports[`executor#${i}`] = await freePort();
  ports["gateway#0"] = await freePort();
  const executorList = Array.from(
    { length: executors },
    (_, i) => `127.0.0.1:${ports[`executor#${i}`]}`,
  );
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? home,
    AGENTMESH_HOME: home,
    AGENTMESH_CERT_DIR: certDir,
    AGENTMESH_POLICY: options.policyPath ?? resolve("bundles/agentmesh.tar.gz"),
    DATABASE_URL: options.databaseUrl,
    AGENTMESH_DB_SCHEMA: schema,
    NATS_URL: options.natsUrl,
    AGENTMESH_BUS_PREFIX: prefix,
    AGENTMESH_METRICS_PORT: "0",
    AGENTMESH_REGISTRY_ADDR: `127.0.0.1:${ports.registry}`,
    AGENTMESH_PLANNER_ADDR: `127.0.0.1:${ports.planner}`,
    AGENTMESH_LEARNING_ADDR: `127.0.0.1:${ports.learning}`,
    AGENTMESH_EXECUTOR_ADDR: executorList.join(","),
    CHAOS_LEDGER: ledger,
    LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? "warn",
    ...options.env,
  };
  // One CA, one certificate per identity, issued before anything starts.
  await ensureIdentities({ certDir, names: chaosIdentities });

  const procs = new Map<string, Proc>();
  const killedPids = new Set<number>();
  const log = createWriteStream(join(home, "logs", "processes.log"));
  const agentSeq: Record<string, number> = {};
  const apiKey = newApiKey();
  const clients = new Map<number, MeshClient>();
  let cliCerts: CertWatcher | undefined;
  const lazies = new Map<number, LazyClient<typeof ExecutorService>>();
  let store: Store | undefined;

  const spawnProc = async (
    key: string,
    args: string[],
    ready: RegExp,
    extraEnv: Record<string, string> = {},
  ) => {
    const child = spawn(process.execPath, args, {
      env: { ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const p: Proc = { child, out: "" };
    procs.set(key, p);
    const tap = (c: Buffer) => {
      p.out = (p.out + c.toString()).slice(-20_000);
      log.write(`[${key} ${child.pid} ${new Date().toISOString()}] ${c.toString()}`);
    };
    child.stdout!.on("data", tap);
    child.stderr!.on("data", tap);
    await waitFor(
      `${key} to be ready`,
      () => {
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`${key} exited (${child.exitCode ?? child.signalCode}):\n${p.out}`);
        return ready.test(p.out);
      },
      90_000,
    );
    return p;
  };
  const running = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;
  const proc = (key: string) => {
    const p = procs.get(key);
    if (!p) throw new Error(`no process ${key}`);
    return p;
  };

  const mesh: ChaosMesh = {
    home,
    certDir,
    schema,
    prefix,
    tenantId,
    ledger,
    env,
    gateways: 1,
    killedPids,
    client(i) {
      let c = clients.get(i);
      if (!c) {
        c = createClient({
          baseUrl: `http://127.0.0.1:${ports[`gateway#${i}`]}`,
          apiKey: apiKey.secret,
        });
        clients.set(i, c);
      }
      return c;
    },
    executorAddress: (i) => `127.0.0.1:${ports[`executor#${i}`]}`,
    executor(i = 0) {
      let lazy = lazies.get(i);
      if (!lazy) {
        if (!cliCerts) throw new Error("mesh not started");
        lazy = createLazyClient(
          ExecutorService,
          () => ({ address: mesh.executorAddress(i), spiffeId: spiffeId({ name: "executor" }) }),
          cliCerts,
        );
        lazies.set(i, lazy);
      }
      return lazy.client;
    },
    async start(key) {
      const [name] = key.split("#");
      const port = String(ports[key.includes("#") ? key : name!]);
      const p = await spawnProc(key, ["bin/agentmesh.js", "serve", name!], /"event":"ready"/, {
        [`AGENTMESH_${name!.toUpperCase()}_PORT`]: port,
      });
      p.instance = /"instanceId":"([^"]+)"/.exec(p.out)?.[1];
    },
    async startAgent(kind) {
      const n = agentSeq[kind] ?? 0;
      agentSeq[kind] = n + 1;
      const key = `agent-${kind}#${n}`;
      const instance = `chaos-${kind}-${n}`;
      const p = await spawnProc(
        key,
        [...tsx, "test/chaos/ledger-agent.ts", kind, "--instance", instance],
        / ready: /,
      );
      p.instance = instance;
      return key;
    },
    async kill(key) {
      const p = proc(key);
      procs.delete(key);
      if (!running(p)) return;
      const exited = once(p.child, "exit");
      if (p.child.pid) killedPids.add(p.child.pid);
      p.child.kill("SIGKILL");
      await exited;
    },
    signal(key, signal) {
      proc(key).child.kill(signal);
    },
    agentKeys: (kind) =>
      [...procs.keys()].filter((k) => k.startsWith(kind ? `agent-${kind}#` : "agent-")),
    pid: (key) => proc(key).child.pid ?? 0,
    instanceOf: (key) => proc(key).instance ?? "",
    async agentsNotLive() {
      const st = await mesh.store();
      const rows = await st.orm.em.fork().execute<{ instance_id: string }[]>(
        `select instance_id from "${schema}".agents
            where state = 'LIVE' and lease_expires_at > now()`,
      );
      const live = new Set(rows.map((r) => r.instance_id));
      return mesh.agentKeys().filter((k) => !live.has(mesh.instanceOf(k)));
    },
    async store() {
      store ??= await openStore({ databaseUrl: options.databaseUrl, schema, migrate: false });
      return store;
    },
    async stop() {
      const stopping = Date.now();
      for (const p of procs.values()) {
        // A stopped process cannot die until it is continued.
        if (running(p)) p.child.kill("SIGCONT");
        if (running(p)) p.child.kill("SIGKILL");
      }
      await Promise.all(
        [...procs.values()].map((p) => (running(p) ? once(p.child, "exit") : undefined)),
      );
      procs.clear();
      for (const l of lazies.values()) l.close();
      cliCerts?.close();
      await store?.close().catch(() => undefined);
      // Drop what we made; the servers may already be gone (private ones).
      const s = await openStore({ databaseUrl: options.databaseUrl, migrate: false }).catch(
        () => undefined,
      );
      await s?.orm.em
        .fork()
        .execute(`drop schema if exists "${schema}" cascade`)
        .catch(() => undefined);
      await s?.close().catch(() => undefined);
      const nc = await connectNats(options.natsUrl, "chaos-cleanup", 1_000).catch(() => undefined);
      if (nc) {
        const jsm = await jetstreamManager(nc);
        for (const st of Object.values(busNames(prefix).streams))
          await jsm.streams.delete(st).catch(() => false);
        await nc.close();
      }
      log.end();
      console.log(`chaos mesh: stopped and cleaned up in ${Date.now() - stopping} ms`);
      if (process.env.CHAOS_KEEP !== "1") await rm(home, { recursive: true, force: true });
      else console.log(`chaos mesh kept at ${home}`);
    },
  };

  try {
    cliCerts = await watchCertificates({ dir: certPaths(certDir, "cli").dir, name: "cli" });
    // The registry first (it migrates the schema), then the others side by side.
    await mesh.start("registry");
    const st = await mesh.store();
    await st.tenants.create({ id: tenantId, displayName: "Acme" });
    await st.tenant(tenantId).apiKeys.create({
      keyId: apiKey.keyId,
      secretHash: apiKey.secretHash,
      name: "chaos",
      roles: ["tenant.admin"],
    });
    await Promise.all([
      mesh.start("learning"),
      mesh.start("planner"),
      ...Array.from({ length: executors }, (_, i) => mesh.start(`executor#${i}`)),
    ]);
    const agents = { util: 2, text: 1, data: 1, ...options.agents };
    await Promise.all([
      mesh.start("gateway#0"),
      ...Object.entries(agents).flatMap(([kind, n]) =>
        Array.from({ length: n }, () => mesh.startAgent(kind as AgentKind)),
      ),
    ]);
    console.log(`chaos mesh: ${procs.size} processes ready in ${Date.now() - started} ms`);
    return mesh;
  } catch (err) {
    await mesh.stop().catch(() => undefined);
    throw err;
  }
}
