/**
 * Job fan-out throughput and latency, one round trip on both sides: a job
 * published and awaited (PubAck), taken by a worker in its own process that
 * publishes a result, awaits its PubAck and acks the job, and the result
 * consumed and acked back here, as the executor sees it.
 * - raw: bare JetStream (`openRawRoundTrip`), byte payloads;
 * - mesh: `publishJob` through `lib/bus`, the `util.echo` skill of an
 *   `agentmesh agent util` process (the agent SDK with a no-op handler), results
 *   through `consumeResults`.
 * `rawOneHop` (publish → consume → ack in one process) is printed for reference.
 *
 * Throughput: a closed loop with a window of publishes in flight. Latency: an
 * open loop at a fixed rate (2,000 jobs/s; 500 under --smoke), end to end.
 * Each phase prints the CPU per job of this process (the executor's side), of
 * the worker process and of a local NATS server, and the machine's busy cores:
 * a steadier measure than a tail percentile on a shared two-core machine.
 * The latency phases also say how late a sleeping thread woke meanwhile
 * (`schedulerLateness`, with the idle machine's figure first): the part of a
 * tail that the scheduler, not the code under test, adds.
 * Targets: mesh throughput ≥ 50% of raw, mesh p99 ≤ 5 ms at 2,000 jobs/s.
 *
 * `tls`: raw and mesh again against a private pinned nats-server with the
 * production configuration (`agentmesh nats config`: mutual TLS, SPIFFE users,
 * the generated permissions; the raw side as an unrestricted `bench` user),
 * and what TLS costs over the plaintext runs (throughput, p99, CPU per job).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { utilAgent } from "../agents/util.js";
import { StepJobSchema, StepResultStatus } from "../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import { natsTlsOptions } from "../lib/bus/nats-tls.js";
import { spiffeId } from "../lib/identity/spiffe.js";
import { startMeshNatsServer } from "../lib/testing/mesh-nats-server.js";
import { watchCertificates } from "../lib/tls/cert-watcher.js";
import { certPaths, ensureIdentities } from "../lib/tls/dev-ca.js";
import type { Benchmark } from "./benchmark.js";
import { runOpenLoop } from "./open-loop.js";
import { commandCpuSeconds, cpuSecondsOf, machineBusySeconds } from "./process-cpu.js";
import { openRawRoundTrip, openRawWorkQueue } from "./raw-jetstream.js";
import { startSchedulerProbe } from "./scheduler-probe.js";

const natsUrl = process.env.NATS_URL || "nats://127.0.0.1:4222";

/** Publishes `total` messages with `window` in flight; resolves when `done` saw them all. */
async function closedLoop(
  total: number,
  window: number,
  publish: (i: number) => Promise<unknown>,
  finished: () => number,
): Promise<{ rate: number; count: number; seconds: number }> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < total) await publish(next++);
    }),
  );
  while (finished() < total) await new Promise((r) => setTimeout(r, 1));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    rate: Math.round(total / seconds),
    count: total,
    seconds: Math.round(seconds * 100) / 100,
  };
}

/**
 * Starts counting CPU time; the returned function gives µs per job since then of
 * this process, the worker process and the NATS server (NaN when not local).
 */
function cpuPerJob(workerPid: number): (jobs: number) => Record<string, number> {
  const nats = () => commandCpuSeconds(["nats-server"])["nats-server"]!;
  const self0 = process.cpuUsage();
  const worker0 = cpuSecondsOf(workerPid);
  const nats0 = nats();
  const machine0 = machineBusySeconds();
  const t0 = process.hrtime.bigint();
  return (jobs) => {
    const self = process.cpuUsage(self0);
    const perJob = (seconds: number) => Math.round((seconds * 1e6) / Math.max(1, jobs));
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    return {
      executorUs: perJob((self.user + self.system) / 1e6),
      workerUs: perJob(cpuSecondsOf(workerPid) - worker0),
      natsServerUs: perJob(nats() - nats0),
      machineCores: Math.round(((machineBusySeconds() - machine0) / elapsed) * 100) / 100,
    };
  };
}

/** Untimed jobs first, so JIT and connections are warm in both processes of each side. */
const warmup = 1_000;

/** Promises for results by job id, resolved as the consumer sees them. */
function resultWaiters() {
  const waiters = new Map<string, () => void>();
  return {
    seen(id: string): void {
      waiters.get(id)?.();
      waiters.delete(id);
    },
    wait(id: string): Promise<void> {
      return new Promise((resolve) => waiters.set(id, resolve));
    },
  };
}

/** One side of the comparison. */
interface RoundTripSide {
  /** Publishes job `id`; resolves on its PubAck. */
  publish(id: string): Promise<unknown>;
  /** Results consumed so far. */
  results(): number;
  /** The process that runs the jobs, for its CPU time. */
  workerPid: number;
}

/**
 * Warm-up, then throughput (a closed loop of `total` jobs) and latency at
 * `rate` (an open loop for `durationMs`), each with the CPU it cost per job.
 */
async function roundTrips(
  side: RoundTripSide,
  waiters: ReturnType<typeof resultWaiters>,
  total: number,
  rate: number,
  durationMs: number,
) {
  await closedLoop(warmup, 128, (i) => side.publish(`w${i}`), side.results);
  const before = side.results();
  let cpu = cpuPerJob(side.workerPid);
  const throughput = await closedLoop(
    total,
    128,
    (i) => side.publish(`t${i}`),
    () => side.results() - before,
  );
  const throughputCpu = cpu(throughput.count);
  let n = 0;
  cpu = cpuPerJob(side.workerPid);
  const probe = startSchedulerProbe();
  const latency = await runOpenLoop({
    rate,
    durationMs,
    call: () => {
      const id = `l${n++}`;
      const done = waiters.wait(id);
      return side.publish(id).then(() => done);
    },
  });
  return {
    throughput: { ...throughput, cpu: throughputCpu },
    latencyAtRate: {
      ...latency,
      cpu: cpu(latency.completed),
      schedulerLateness: await probe.stop(),
    },
  };
}

/**
 * Where a side runs: the shared NATS in plaintext, or a private pinned
 * nats-server with the mesh's production configuration (mutual TLS, users
 * mapped from SPIFFE IDs, the generated permissions).
 */
interface BusTarget {
  natsUrl: string;
  /** The certificate folders (one per identity) and the server's SPIFFE ID, with TLS. */
  tls?: { certDir: string; serverId: string };
  /** Bus prefix the server's permissions were written for. */
  prefix: string;
}

const benchPrefix = () => `benchbus${randomBytes(4).toString("hex")}`;

/** A private nats-server with `agentmesh nats config`'s output for `prefix`, plus a raw `bench` user. */
async function startTlsTarget(prefix: string): Promise<BusTarget & { stop(): Promise<void> }> {
  const certDir = await mkdtemp(join(tmpdir(), "bench-bus-certs-"));
  await ensureIdentities({ certDir, names: ["nats", "executor", "agent-util", "bench"] });
  const nats = await startMeshNatsServer({
    certDir,
    prefix,
    knownCapabilities: Object.keys(utilAgent.skills),
    unrestrictedUsers: [spiffeId({ name: "bench" })],
  });
  return {
    natsUrl: nats.url,
    tls: { certDir, serverId: spiffeId({ name: "nats" }) },
    prefix,
    async stop() {
      await nats.stop();
      await rm(certDir, { recursive: true, force: true });
    },
  };
}

/** Bare JetStream, the same round trip: job → worker process → result (PubAck, then ack) → consumed. */
async function raw(target: BusTarget, total: number, rate: number, durationMs: number) {
  const waiters = resultWaiters();
  const queue = await openRawRoundTrip(
    target.natsUrl,
    "RAW",
    waiters.seen,
    target.tls && {
      certDir: certPaths(target.tls.certDir, "bench").dir,
      serverId: target.tls.serverId,
    },
  );
  const { js, jobSubject } = queue;
  const body = new Uint8Array(120); // about a StepJob's size
  try {
    const side = {
      publish: (id: string) => js.publish(jobSubject, body, { msgID: id }),
      results: queue.results,
      workerPid: queue.workerPid,
    };
    return await roundTrips(side, waiters, total, rate, durationMs);
  } finally {
    await queue.close();
  }
}

/** For reference: one hop only (publish → consume → ack in this process), throughput. */
async function rawOneHop(total: number) {
  const queue = await openRawWorkQueue(natsUrl, "RAW1");
  const { js, subject } = queue;
  const body = new Uint8Array(120);
  try {
    await closedLoop(
      warmup,
      128,
      (i) => js.publish(subject, body, { msgID: `w${i}` }),
      queue.acked,
    );
    const before = queue.acked();
    return await closedLoop(
      total,
      128,
      (i) => js.publish(subject, body, { msgID: `t${i}` }),
      () => queue.acked() - before,
    );
  } finally {
    await queue.close();
  }
}

async function mesh(target: BusTarget, total: number, rate: number, durationMs: number) {
  const { natsUrl, prefix, tls } = target;
  // With TLS the executor's side connects as `agentmesh serve executor` does.
  const certs = tls && (await watchCertificates({ dir: certPaths(tls.certDir, "executor").dir }));
  const bus = await createJetStreamBus({
    servers: natsUrl,
    prefix,
    name: "bench-executor",
    ...(tls && certs
      ? { identity: "executor", tls: natsTlsOptions(certs, tls.serverId).options }
      : {}),
  });
  // The agent runs in its own process, as in production: `agentmesh agent util`, whose
  // util.echo skill is the no-op handler. It inherits node flags such as --cpu-prof.
  const agent = spawn(
    process.execPath,
    [
      ...process.execArgv,
      "bin/agentmesh.js",
      "agent",
      "util",
      "--concurrency",
      "256",
      "--no-registry",
    ],
    {
      env: {
        ...process.env,
        NATS_URL: natsUrl,
        AGENTMESH_BUS_PREFIX: prefix,
        ...(tls ? { AGENTMESH_CERT_DIR: tls.certDir } : {}),
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  await new Promise<void>((resolve, reject) => {
    agent.stdout!.on("data", (c: Buffer) => {
      if (c.toString().includes("ready:")) resolve();
    });
    agent.once("exit", (code) => reject(new Error(`bench agent exited with ${code}`)));
  });
  let succeeded = 0;
  const waiters = resultWaiters();
  const results = await bus.consumeResults({
    concurrency: 256,
    prefetch: 512,
    handler: (d) => {
      if (d.data.status !== StepResultStatus.SUCCEEDED) return;
      succeeded++;
      waiters.seen(d.data.attemptId);
    },
  });
  const job = (attemptId: string) =>
    create(StepJobSchema, {
      attemptId,
      goalId: "bench",
      tenantId: "bench",
      stepId: "s1",
      capability: "util.echo",
      attempt: 1,
      input: { n: 1 },
    });
  try {
    const side = {
      publish: (id: string) => bus.publishJob(job(id)),
      results: () => succeeded,
      workerPid: agent.pid!,
    };
    return await roundTrips(side, waiters, total, rate, durationMs);
  } finally {
    agent.kill("SIGTERM");
    await once(agent, "exit");
    await results.stop({ graceMs: 0 });
    await bus.close({ graceMs: 0 });
    certs?.close();
    if (!tls) {
      const nc = await connectNats(natsUrl);
      const jsm = await jetstreamManager(nc);
      for (const s of Object.values(busNames(prefix).streams))
        await jsm.streams.delete(s).catch(() => false);
      await nc.close();
    }
  }
}

/** How much TLS costs: TLS over plaintext for throughput, and CPU per job of each process. */
function tlsCost(
  plain: Awaited<ReturnType<typeof raw>>,
  tls: Awaited<ReturnType<typeof raw>>,
): Record<string, number> {
  const r = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const p = plain.throughput.cpu;
  const t = tls.throughput.cpu;
  return {
    throughputRatio: r(tls.throughput.rate, plain.throughput.rate),
    p99Ratio: r(tls.latencyAtRate.latency.p99Us, plain.latencyAtRate.latency.p99Us),
    executorCpuRatio: r(t.executorUs!, p.executorUs!),
    workerCpuRatio: r(t.workerUs!, p.workerUs!),
    natsServerCpuRatio: r(t.natsServerUs!, p.natsServerUs!),
  };
}

export const bus: Benchmark = {
  name: "bus",
  description:
    "JetStream job round trip (job → worker process → result → consumed): raw vs lib/bus + agent SDK process (no-op skill)",
  async run({ smoke }) {
    const total = smoke ? 2_000 : 20_000;
    const rate = smoke ? 500 : 2_000;
    const durationMs = smoke ? 1_000 : 5_000;
    const idleProbe = startSchedulerProbe();
    await new Promise((r) => setTimeout(r, smoke ? 300 : 2_000));
    const idleSchedulerLateness = await idleProbe.stop();
    const plain: BusTarget = { natsUrl, prefix: benchPrefix() };
    const r = await raw(plain, total, rate, durationMs);
    const oneHop = await rawOneHop(total);
    const m = await mesh(plain, total, rate, durationMs);
    // The same two runs over mutual TLS, against the production NATS configuration.
    const target = await startTlsTarget(benchPrefix());
    let tlsRaw: Awaited<ReturnType<typeof raw>>;
    let tlsMesh: Awaited<ReturnType<typeof mesh>>;
    try {
      tlsRaw = await raw(target, total, rate, durationMs);
      tlsMesh = await mesh(target, total, rate, durationMs);
    } finally {
      await target.stop();
    }
    const ratio = Math.round((m.throughput.rate / r.throughput.rate) * 100) / 100;
    const p99Ms = m.latencyAtRate.latency.p99Us / 1000;
    const targets = {
      throughputRatio: { want: ">= 0.5", got: ratio, met: ratio >= 0.5 },
      meshP99MsAtRate: {
        rate,
        want: "<= 5",
        got: p99Ms,
        met: p99Ms <= 5 && m.latencyAtRate.achievedRate >= rate * 0.95,
      },
    };
    return {
      raw: r,
      rawOneHop: { throughput: oneHop },
      idleSchedulerLateness,
      mesh: m,
      tls: {
        server:
          "private pinned nats-server, mutual TLS, verify_and_map users, generated permissions",
        raw: tlsRaw,
        mesh: tlsMesh,
        throughputRatio: Math.round((tlsMesh.throughput.rate / tlsRaw.throughput.rate) * 100) / 100,
        costOverPlaintext: { raw: tlsCost(r, tlsRaw), mesh: tlsCost(m, tlsMesh) },
      },
      throughputRatio: ratio,
      meshP99MsAtRate: p99Ms,
      targets,
      // The latency target is set at 2,000 jobs/s: a smoke run (500/s) cannot meet it.
      meetsTargets: !smoke && targets.throughputRatio.met && targets.meshP99MsAtRate.met,
    };
  },
};
