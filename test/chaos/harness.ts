/**
 * The chaos harness: the mesh as separate processes — `agentmesh serve
 * <component>` per component (each with its own certificate from one dev CA,
 * on fixed ports so a restarted process comes back where clients look) and
 * ledger agents (`ledger-agent.ts`, i.e. `agentmesh agent util` with a
 * side-effect ledger) — on a private NATS and a PostgreSQL schema of its own;
 * a steady stream of goals; and the end-of-scenario audit: every goal the
 * mesh acknowledged finished SUCCEEDED, none finished twice, no idempotency
 * key made two goals, and no step's effect happened twice.
 *
 * @example
 * const nats = await startPrivateNats();
 * const mesh = await startChaosMesh({ databaseUrl, natsUrl: nats.url });
 * const load = startGoalStream(mesh, { rate: 10 });
 * await mesh.kill("executor");
 * await mesh.start("executor");
 * const audit = await auditGoals(mesh, await load.stop());
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats } from "../../lib/bus/jetstream-bus.js";
import { MeshError } from "../../lib/errors/mesh-error.js";
import { spiffeId } from "../../lib/identity/spiffe.js";
import { createLazyClient, type LazyClient } from "../../lib/mesh/lazy-client.js";
import type { Client } from "../../lib/rpc/client.js";
import { openStore, type Store } from "../../lib/store/store.js";
import { freePort } from "../../lib/testing/free-port.js";
import { runId } from "../../lib/testing/infra.js";
import { type CertWatcher, watchCertificates } from "../../lib/tls/cert-watcher.js";
import { certPaths, ensureIdentities } from "../../lib/tls/dev-ca.js";

export type ServeName = "registry" | "planner" | "executor" | "learning";

/** Every identity the chaos mesh issues certificates for. */
export const chaosIdentities = ["registry", "planner", "executor", "learning", "cli", "agent-util"];

/** A free TCP port on 127.0.0.1 (closed again, so a child can bind it). */

export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A NATS JetStream server of our own, which a scenario may kill -9 and restart. */
export interface PrivateNats {
  url: string;
  port: number;
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivateNats(): Promise<PrivateNats> {
  const dir = await mkdtemp(join(tmpdir(), "chaos-nats-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const nats: PrivateNats = {
    url: `nats://127.0.0.1:${port}`,
    port,
    async start() {
      child = spawn(
        "/usr/sbin/nats-server",
        ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let err = "";
      child.stderr!.on("data", (c: Buffer) => {
        err = (err + c.toString()).slice(-4_000);
      });
      const c = child;
      await waitFor(
        "private NATS",
        async () => {
          if (c.exitCode !== null) throw new Error(`nats-server exited: ${err}`);
          return /Server is ready/.test(err);
        },
        20_000,
      );
    },
    async kill() {
      if (!child || child.exitCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      await nats.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await nats.start();
  return nats;
}

interface Proc {
  name: string;
  child: ChildProcess;
  out: string;
}

export interface ChaosMeshOptions {
  databaseUrl: string;
  natsUrl: string;
  /** Executor replicas started at first. Default 1 (a second slot is kept for `start("executor", 1)`). */
  executors?: number;
  /** Ledger agent processes. Default 2. */
  agents?: number;
  /** Policy bundle to run with (a copy the scenario may swap). Default the committed one. */
  policyPath?: string;
  /** Extra environment for every process. */
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
  /** Address of executor replica `i`. */
  executorAddress(i: number): string;
  /** Starts (or restarts) a component; replica `i` of the executor. Resolves when it is ready. */
  start(name: ServeName, i?: number): Promise<void>;
  /** Starts a ledger agent; resolves with its key once it consumes. */
  startAgent(): Promise<string>;
  /** kill -9 a process (`executor`, `executor#1`, an agent key) and wait for it to die. */
  kill(key: string): Promise<void>;
  /** Keys of the running agents. */
  agentKeys(): string[];
  /** A client of executor replica `i` as `cli`. */
  executor(i?: number): Client<typeof ExecutorService>;
  /** The mesh's tables, for the audit. */
  store(): Promise<Store>;
  stop(): Promise<void>;
}

/** Starts the mesh: certificates, then registry, learning, planner, executors, agents. */
export async function startChaosMesh(options: ChaosMeshOptions): Promise<ChaosMesh> {
  const home = await mkdtemp(join(tmpdir(), "chaos-mesh-"));
  const certDir = join(home, "certs");
  const ledger = join(home, "ledger");
  await mkdir(join(home, "logs"), { recursive: true });
  const schema = runId("chaos");
  const prefix = runId("chaos");
  const tenantId = "acme";
  const executors = options.executors ?? 1;
  const ports: Record<string, number> = {};
  for (const n of ["registry", "planner", "learning"]) ports[n] = await freePort();
  // Two executor slots always, so a scenario can add a replica later.
  for (let i = 0; i < Math.max(2, executors); i++) ports[`executor#${i}`] = await freePort();
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
    // Short enough that a dead agent's job comes back well within the step's 10 s timeout.
    AGENTMESH_BUS_ACK_WAIT_MS: "2000",
    AGENTMESH_EXECUTOR_LEASE_MS: "3000",
    AGENTMESH_METRICS_PORT: "0",
    AGENTMESH_REGISTRY_ADDR: `127.0.0.1:${ports.registry}`,
    AGENTMESH_PLANNER_ADDR: `127.0.0.1:${ports.planner}`,
    AGENTMESH_LEARNING_ADDR: `127.0.0.1:${ports.learning}`,
    AGENTMESH_EXECUTOR_ADDR: `127.0.0.1:${ports["executor#0"]}`,
    CHAOS_LEDGER: ledger,
    // The window between an effect and its result, where a kill makes redelivery matter.
    CHAOS_EFFECT_MS: "100",
    LOG_LEVEL: "warn",
    ...options.env,
  };
  // One CA, one certificate per process identity, issued before anything starts.
  await ensureIdentities({ certDir, names: chaosIdentities });

  const procs = new Map<string, Proc>();
  const log = createWriteStream(join(home, "logs", "processes.log"));
  let agentSeq = 0;
  let cliCerts: CertWatcher | undefined;
  const lazies = new Map<number, LazyClient<typeof ExecutorService>>();
  let store: Store | undefined;

  const spawnProc = async (key: string, args: string[], ready: RegExp, extraEnv = {}) => {
    const child = spawn(process.execPath, args, {
      env: { ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const p: Proc = { name: key, child, out: "" };
    procs.set(key, p);
    const tap = (c: Buffer) => {
      p.out = (p.out + c.toString()).slice(-20_000);
      log.write(`[${key} ${child.pid}] ${c.toString()}`);
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
  };

  const mesh: ChaosMesh = {
    home,
    certDir,
    schema,
    prefix,
    tenantId,
    ledger,
    env,
    executorAddress: (i) => `127.0.0.1:${ports[`executor#${i}`]}`,
    async start(name, i = 0) {
      const key = name === "executor" ? `executor#${i}` : name;
      const port = ports[key]!;
      await spawnProc(key, ["bin/agentmesh.js", "serve", name], /"event":"ready"/, {
        [`AGENTMESH_${name.toUpperCase()}_PORT`]: String(port),
      });
    },
    async startAgent() {
      const key = `agent#${agentSeq++}`;
      await spawnProc(
        key,
        ["--import", "tsx", "test/chaos/ledger-agent.ts", "--concurrency", "16"],
        /ready:/,
      );
      return key;
    },
    async kill(key) {
      const k = key === "executor" ? "executor#0" : key;
      const p = procs.get(k);
      if (!p) throw new Error(`no process ${key}`);
      procs.delete(k);
      if (p.child.exitCode !== null || p.child.signalCode !== null) return;
      const exited = once(p.child, "exit");
      p.child.kill("SIGKILL");
      await exited;
    },
    agentKeys: () => [...procs.keys()].filter((k) => k.startsWith("agent#")),
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
    async store() {
      store ??= await openStore({ databaseUrl: options.databaseUrl, schema, migrate: false });
      return store;
    },
    async stop() {
      for (const p of procs.values()) {
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
      }
      await Promise.all(
        [...procs.values()].map((p) =>
          p.child.exitCode === null && p.child.signalCode === null
            ? once(p.child, "exit")
            : undefined,
        ),
      );
      procs.clear();
      for (const l of lazies.values()) l.close();
      cliCerts?.close();
      await store?.close().catch(() => undefined);
      // Drop what we made; the servers themselves may already be gone (private ones).
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
      if (process.env.CHAOS_KEEP !== "1") await rm(home, { recursive: true, force: true });
    },
  };

  try {
    cliCerts = await watchCertificates({ dir: certPaths(certDir, "cli").dir, name: "cli" });
    // The registry first (it migrates the schema), then the others side by side.
    await mesh.start("registry");
    const st = await mesh.store();
    await st.tenants.create({ id: tenantId, displayName: "Acme" });
    await Promise.all([
      mesh.start("learning"),
      mesh.start("planner"),
      ...Array.from({ length: executors }, (_, i) => mesh.start("executor", i)),
    ]);
    for (let i = 0; i < (options.agents ?? 2); i++) await mesh.startAgent();
    return mesh;
  } catch (err) {
    await mesh.stop().catch(() => undefined);
    throw err;
  }
}

export interface GoalStreamOptions {
  /** Goals per second. */
  rate: number;
  /** Executor replicas to spread submissions over (round robin). Default [0]. */
  replicas?: number[];
  /** How long a submission is retried (same idempotency key) before it counts as not acknowledged. */
  retryForMs?: number;
}

export interface GoalStreamResult {
  /** idempotency key → goal id, for every submission the mesh acknowledged. */
  acked: Map<string, string>;
  /** Submissions never acknowledged. */
  unacked: number;
  /** Failed submission attempts (later retried) by code name. */
  failures: Map<string, number>;
  /** Every failure message, first few. */
  samples: string[];
  /** How long each failed attempt took to fail, ms (fail fast, not hang). */
  failureMs: number[];
}

export interface GoalStream {
  /** Stops submitting; resolves when every submission is acknowledged or given up. */
  stop(): Promise<GoalStreamResult>;
  readonly acked: number;
}

/** Submits `echo` goals at a steady rate, retrying each with its idempotency key. */
export function startGoalStream(mesh: ChaosMesh, options: GoalStreamOptions): GoalStream {
  const replicas = options.replicas ?? [0];
  const retryForMs = options.retryForMs ?? 30_000;
  const acked = new Map<string, string>();
  const failures = new Map<string, number>();
  const samples: string[] = [];
  const failureMs: number[] = [];
  const pending = new Set<Promise<void>>();
  let unacked = 0;
  let n = 0;
  // Keys unique to this stream: a later scenario must not find an earlier one's goals.
  const run = randomBytes(4).toString("hex");
  const submit = async (key: string, seq: number) => {
    const end = Date.now() + retryForMs;
    for (let attempt = 0; ; attempt++) {
      const replica = replicas[(seq + attempt) % replicas.length]!;
      const started = Date.now();
      try {
        const { goal } = await mesh
          .executor(replica)
          .submitGoal(
            { tenantId: mesh.tenantId, kind: "echo", input: { message: key }, idempotencyKey: key },
            { timeoutMs: 5_000 },
          );
        acked.set(key, goal!.goalId);
        return;
      } catch (err) {
        failureMs.push(Date.now() - started);
        const e = MeshError.from(err);
        const code = e.codeName ?? String(e.code);
        failures.set(code, (failures.get(code) ?? 0) + 1);
        if (samples.length < 10) samples.push(`${code}: ${e.message}`);
        if (Date.now() > end) {
          unacked++;
          return;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  const timer = setInterval(() => {
    const seq = n++;
    const p = submit(`${run}-${seq}`, seq).finally(() => pending.delete(p));
    pending.add(p);
  }, 1000 / options.rate);
  return {
    get acked() {
      return acked.size;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return { acked, unacked, failures, samples, failureMs };
    },
  };
}

export interface Audit {
  acked: number;
  succeeded: number;
  notSucceeded: string[];
  finishedTwice: string[];
  duplicateKeys: string[];
  /** Steps whose effect happened more than once (distinct attempts in the ledger). */
  doubleEffects: string[];
  /** Acknowledged goals whose step has no effect in the ledger. */
  missingEffects: string[];
  /** Executions that found their attempt's effect already done (redeliveries absorbed). */
  skippedRedeliveries: number;
  /** Executions in the log. */
  executions: number;
}

/** Waits (up to `timeoutMs`) for every acknowledged goal to end, then checks the invariants. */
export async function auditGoals(
  mesh: ChaosMesh,
  result: GoalStreamResult,
  timeoutMs = 90_000,
): Promise<Audit> {
  const store = await mesh.store();
  const em = () => store.orm.em.fork();
  const ids = [...result.acked.values()];
  const terminal = ["SUCCEEDED", "FAILED", "CANCELLED"];
  let rows: { id: string; status: string; error: unknown }[] = [];
  await waitFor(
    "every acknowledged goal to finish",
    async () => {
      // knex expands an array binding into a list.
      rows = await em().execute<{ id: string; status: string; error: unknown }[]>(
        `select id, status, error from "${mesh.schema}".goals where id in (?)`,
        [ids],
      );
      return rows.length === ids.length && rows.every((r) => terminal.includes(r.status));
    },
    timeoutMs,
    500,
  ).catch((err: unknown) => {
    // A timeout is reported below as goals not succeeded; anything else is the audit's own bug.
    if (!String(err).includes("timed out")) throw err;
  });
  const status = new Map(rows.map((r) => [r.id, r]));
  const notSucceeded = ids
    .filter((g) => status.get(g)?.status !== "SUCCEEDED")
    .map((g) => {
      const r = status.get(g);
      return `${g}:${r?.status ?? "missing"}${r?.error ? ` ${JSON.stringify(r.error)}` : ""}`;
    });
  const twice = await em().execute<{ goal_id: string; n: string }[]>(
    `select goal_id, count(*) as n from "${mesh.schema}".goal_events
      where type = 'finished' group by goal_id having count(*) > 1`,
  );
  const keys = await em().execute<{ idempotency_key: string }[]>(
    `select idempotency_key from "${mesh.schema}".goals where idempotency_key is not null
      group by tenant_id, idempotency_key having count(*) > 1`,
  );
  const effects = new Map<string, number>();
  for (const f of await readdir(mesh.ledger).catch(() => [] as string[])) {
    const [goal, step] = f.split(".");
    const k = `${goal}.${step}`;
    effects.set(k, (effects.get(k) ?? 0) + 1);
  }
  const log = (await readFile(`${mesh.ledger}.log`, "utf8").catch(() => ""))
    .split("\n")
    .filter(Boolean);
  return {
    acked: ids.length,
    succeeded: ids.length - notSucceeded.length,
    notSucceeded: notSucceeded.slice(0, 20),
    finishedTwice: twice.map((r) => r.goal_id),
    duplicateKeys: keys.map((r) => r.idempotency_key),
    doubleEffects: [...effects].filter(([, n]) => n > 1).map(([k, n]) => `${k} x${n}`),
    missingEffects: ids.filter((g) => !effects.has(`${g}.echo`)).slice(0, 20),
    skippedRedeliveries: log.filter((l) => l.endsWith(" skip")).length,
    executions: log.length,
  };
}
