import { performance } from "node:perf_hooks";
import { timestampMs, type Value } from "@bufbuild/protobuf/wkt";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import type { GoalFinished } from "../gen/agentmesh/v1/executor_pb.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import type { JobBus } from "../lib/bus/job-bus.js";
import { createLazyClient } from "../lib/mesh/lazy-client.js";
import type { ComponentName } from "../lib/mesh/mesh-runtime.js";
import { storeCounts } from "../lib/store/store-metrics.js";
import { mark } from "../lib/telemetry/stage-trace.js";
import { freePort } from "../lib/testing/free-port.js";
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { type ChildComponent, spawnComponent } from "../lib/testing/processes.js";
import { grpcRegistryLink } from "../sdk/agent/grpc-registry-link.js";
import { runAgent } from "../sdk/agent/run-agent.js";
import type { Benchmark } from "./benchmark.js";
import { finishedEvent } from "./finished-event.js";
import { floorStatementsPerGoal, startFloor } from "./goals-floor.js";
import { LatencyHistogram, type LatencySummary } from "./histogram.js";
import { runOpenLoop } from "./open-loop.js";
import { commandCpuSeconds, cpuSecondsOf, machineBusySeconds } from "./process-cpu.js";
import { openRawWorkQueue } from "./raw-jetstream.js";

/** Goal latency p99 above this (or any error or dropped call) ends the ramp. */
const p99BudgetMs = 1_000;

interface RateResult {
  targetRate: number;
  stepsPerSecond: number;
  completed: number;
  errors: number;
  dropped: number;
  goalLatencyMs: { p50: number; p99: number; max: number };
  /** The mesh only: a job's wait from dispatch to the agent's handler starting. */
  queueWaitMs?: { p50: number; p99: number; max: number };
  /** CPU cores the mesh's processes used during the level (PostgreSQL and NATS not included). */
  meshCores: number;
  /** Cores per process: each component, and the bench process (load generator, agent, event watcher). */
  cores: Record<string, number>;
  /** CPU milliseconds per finished goal, per process (this one included), and their sum. */
  cpuMsPerGoal: Record<string, number>;
  cpuMsPerGoalTotal: number;
  /** PostgreSQL's and NATS's CPU milliseconds per goal (shared servers: other clients count too). */
  serverCpuMsPerGoal: Record<string, number>;
  /** Busy cores of the whole machine (PostgreSQL, NATS and anything else running included). */
  machineCores: number;
  /** Cores of all PostgreSQL and NATS server processes (shared servers: other clients count too). */
  serverCores: Record<string, number>;
  /** Event-loop utilisation of the bench process (load generator, agent, event watcher). */
  benchLoopUtilisation: number;
  /** In-process mode only: the one mesh process's event-loop utilisation and statements per goal. */
  meshLoopUtilisation?: number;
  statementsPerGoal?: number;
  held: boolean;
  firstError?: string;
}

/** Raw JetStream: publish → consume → ack on a work-queue stream, closed loop. */
async function rawJetStream(natsUrl: string, total: number) {
  const queue = await openRawWorkQueue(natsUrl, "GOALS");
  const { js, subject } = queue;
  const body = new Uint8Array(160); // about a StepJob of an echo step
  try {
    const t0 = process.hrtime.bigint();
    let next = 0;
    await Promise.all(
      Array.from({ length: 128 }, async () => {
        while (next < total) await js.publish(subject, body, { msgID: `m${next++}` });
      }),
    );
    while (queue.acked() < total) await new Promise((r) => setTimeout(r, 1));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    return { messagesPerSecond: Math.round(total / seconds), messages: total };
  } finally {
    await queue.close();
  }
}

const ms = (s: LatencySummary) => ({
  p50: round(s.p50Us / 1000),
  p99: round(s.p99Us / 1000),
  max: round(s.maxUs / 1000),
});
const round = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

/** The mesh as the bench drives it: in this process, or `agentmesh serve` children. */
interface BenchMesh {
  mesh: TestMesh;
  /** The component processes (empty in-process). */
  children: { name: ComponentName; child: ChildComponent }[];
}

const componentNames: ComponentName[] = ["registry", "learning", "planner", "executor"];

/**
 * Each component its own process, as production runs them: the test mesh here
 * holds only the certificates, schema, tenant and bus prefix they share.
 */
export async function startProcessMesh(databaseUrl: string, natsUrl: string): Promise<BenchMesh> {
  const mesh = await startTestMesh({ databaseUrl, natsUrl, components: [] });
  try {
    const env = mesh.childEnv();
    const ports = new Map<ComponentName, number>();
    for (const name of componentNames) {
      const port = await freePort();
      ports.set(name, port);
      env[`AGENTMESH_${name.toUpperCase()}_ADDR`] = `127.0.0.1:${port}`;
      mesh.runtime.setAddress(name, `127.0.0.1:${port}`);
    }
    const children = await Promise.all(
      componentNames.map(async (name) => ({
        name,
        child: await spawnComponent(
          name,
          { ...env, [`AGENTMESH_${name.toUpperCase()}_PORT`]: String(ports.get(name)) },
          // A first start builds the source bundle; on a loaded machine that takes a while.
          120_000,
        ),
      })),
    );
    return { mesh, children };
  } catch (err) {
    await mesh.stop();
    throw err;
  }
}

/** PostgreSQL backends and the NATS server (shared: other clients' work counts too). */
const serverCommands = ["postgres", "nats-server"];

export const goals: Benchmark = {
  name: "goals",
  description:
    "1-step echo goals end to end (submit → plan → dispatch → util.echo → result → finished event) at rising open-loop rates vs the floor (the same durable work on bare pg + NATS, bench/goals-floor.ts) and raw JetStream publish→consume→ack; the mesh in separate processes (AGENTMESH_BENCH_MESH=in-process: one process)",
  async run({ smoke }) {
    const databaseUrl = process.env.DATABASE_URL || defaultDatabaseUrl;
    const natsUrl = process.env.NATS_URL || defaultNatsUrl;
    process.env.LOG_LEVEL ??= "warn";
    const inProcess = process.env.AGENTMESH_BENCH_MESH === "in-process";
    const rates = smoke
      ? [10, 20]
      : [10, 20, 50, 75, 100, 125, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000];
    const durationMs = smoke ? 1_500 : 6_000;

    const raw = await rawJetStream(natsUrl, smoke ? 2_000 : 30_000);
    // Both sides: the open-loop ramp, then closed loop (the most each finishes, CPU per goal busy).
    const closed = smoke ? { total: 40, concurrency: 8 } : { total: 2_000, concurrency: 32 };
    const floor = await driveFloor(databaseUrl, natsUrl, {
      rates,
      durationMs,
      warmUpMs: smoke ? 500 : 2_000,
      closed,
    });
    const floorLevels = floor.levels;
    // Statements per goal are a property of the code, not of where it runs: counted in
    // this process, so with the processes mesh by a short in-process run first.
    const statements = inProcess
      ? undefined
      : (
          await drive(await startInProcessMesh(databaseUrl, natsUrl), {
            rates: [20],
            durationMs: smoke ? 1_000 : 3_000,
            warmUpMs: 500,
          })
        ).levels;
    const mesh = inProcess
      ? await startInProcessMesh(databaseUrl, natsUrl)
      : await startProcessMesh(databaseUrl, natsUrl);
    const driven = await drive(mesh, {
      rates,
      durationMs,
      warmUpMs: smoke ? 500 : 2_000,
      closed,
    });
    const levels = driven.levels;
    const closedRatio =
      floor.closed && driven.closed
        ? {
            goalsPerSecond: round2(driven.closed.goalsPerSecond / floor.closed.goalsPerSecond),
            cpuMsPerGoal: round2(driven.closed.cpuMsPerGoalTotal / floor.closed.cpuMsPerGoalTotal),
          }
        : null;

    const sustained = levels.filter((l) => l.held);
    const best = sustained.at(-1);
    const stepsPerSecond = best?.stepsPerSecond ?? 0;
    const at500 = levels.find((l) => l.targetRate === 500);
    const floorRate = floorLevels.filter((l) => l.held).at(-1)?.stepsPerSecond ?? 0;
    // The budget: the rate each side holds with goal p99 ≤ 150 ms.
    const at150 = (ls: RateResult[]) =>
      ls.filter((l) => l.held && l.goalLatencyMs.p99 <= 150).at(-1)?.stepsPerSecond ?? 0;
    const [mesh150, floor150] = [at150(levels), at150(floorLevels)];
    // CPU per goal compared at the highest offered rate both sides held.
    const common = levels
      .filter((l) => l.held && floorLevels.some((f) => f.held && f.targetRate === l.targetRate))
      .at(-1);
    const floorCommon = floorLevels.find((f) => f.targetRate === common?.targetRate);
    const cpuRatio =
      common && floorCommon
        ? round2(common.cpuMsPerGoalTotal / floorCommon.cpuMsPerGoalTotal)
        : null;
    const at200 = levels.find((l) => l.targetRate === 200);
    const floorAt200 = floorLevels.find((l) => l.targetRate === 200);
    return {
      mesh: inProcess ? "in-process" : "processes",
      baseline: {
        rawJetStream: raw,
        floor: {
          description:
            "the same durable work on bare pg + NATS: insert row, publish job, worker process, update row, publish event",
          processes: [
            "bench (load, event watcher)",
            "floor-intake",
            "floor-worker",
            "floor-finisher",
          ],
          statementsPerGoal: floorStatementsPerGoal,
          maxSustainedGoalsPerSecond: floorRate,
          maxGoalsPerSecondAtP99Le150Ms: floor150,
          levels: floorLevels,
          closedLoop: floor.closed,
        },
      },
      statementsPerGoal: (inProcess ? levels[0] : statements?.[0])?.statementsPerGoal ?? null,
      levels,
      maxSustainedStepsPerSecond: stepsPerSecond,
      maxGoalsPerSecondAtP99Le150Ms: mesh150,
      closedLoop: driven.closed,
      /** Closed loop, mesh ÷ floor: goals per second, and CPU per goal over every process. */
      closedLoopRatioToFloor: closedRatio,
      ratioToFloor: floorRate > 0 ? round2(stepsPerSecond / floorRate) : null,
      ratioToFloorAtP99Le150Ms: floor150 > 0 ? round2(mesh150 / floor150) : null,
      cpuPerGoal: common
        ? {
            atRate: common.targetRate,
            meshMs: common.cpuMsPerGoal,
            floorMs: floorCommon!.cpuMsPerGoal,
            meshTotalMs: common.cpuMsPerGoalTotal,
            floorTotalMs: floorCommon!.cpuMsPerGoalTotal,
            meshServersMs: common.serverCpuMsPerGoal,
            floorServersMs: floorCommon!.serverCpuMsPerGoal,
            ratio: cpuRatio,
          }
        : null,
      ratioToRawJetStream: round((stepsPerSecond / raw.messagesPerSecond) * 100) / 100,
      p99BudgetMs,
      targets: {
        ratioToFloorAtP99Le150Ms: {
          want: ">= 0.5",
          got: floor150 > 0 ? round2(mesh150 / floor150) : null,
          met: floor150 > 0 && mesh150 / floor150 >= 0.5,
        },
        p99MsAt200: {
          want: "<= 150 (if the floor holds 200/s at <= 150)",
          got: at200?.held ? at200.goalLatencyMs.p99 : null,
          floor: floorAt200?.held ? floorAt200.goalLatencyMs.p99 : null,
          met: at200?.held === true && at200.goalLatencyMs.p99 <= 150,
        },
        cpuPerGoalRatioToFloor: {
          want: "<= 2",
          got: cpuRatio,
          met: cpuRatio !== null && cpuRatio <= 2,
        },
        stepsPerSecond: { want: ">= 1000", got: stepsPerSecond, met: stepsPerSecond >= 1_000 },
        queueWaitP99MsAt500: {
          want: "<= 20",
          got: at500?.queueWaitMs?.p99 ?? null,
          met: at500?.held === true && (at500.queueWaitMs?.p99 ?? Infinity) <= 20,
        },
      },
    };
  },
};

/** What one side of the comparison runs: a goal end to end, and its processes besides this one. */
interface RampOptions {
  rates: number[];
  durationMs: number;
  oneGoal: () => Promise<void>;
  processes: { name: string; pid: number }[];
  /** What this process is called in `cores`: `bench`, or `mesh` when the mesh runs in it. */
  benchName: string;
  /** Called as a level starts; what it returns gives the level's own figures at its end. */
  level?: () => (completed: number) => Partial<RateResult>;
}

/** Open-loop levels at rising rates until one does not hold; CPU per process and per goal. */
async function rampLevels(options: RampOptions): Promise<RateResult[]> {
  const { processes } = options;
  const levels: RateResult[] = [];
  for (const rate of options.rates) {
    const extras = options.level?.();
    const cpu0 = process.cpuUsage();
    const children0 = processes.map((p) => cpuSecondsOf(p.pid));
    const machine0 = machineBusySeconds();
    const servers0 = commandCpuSeconds(serverCommands);
    const elu0 = performance.eventLoopUtilization();
    const t0 = process.hrtime.bigint();
    const r = await runOpenLoop({
      rate,
      durationMs: options.durationMs,
      call: options.oneGoal,
      maxInFlight: 5_000,
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const cpuSeconds: Record<string, number> = {
      [options.benchName]: (cpu.user + cpu.system) / 1e6,
    };
    processes.forEach((p, i) => {
      cpuSeconds[p.name] = cpuSecondsOf(p.pid) - children0[i]!;
    });
    const serverSeconds = Object.fromEntries(
      Object.entries(commandCpuSeconds(serverCommands)).map(([n, cpu]) => [n, cpu - servers0[n]!]),
    );
    const perSecond = (o: Record<string, number>) =>
      Object.fromEntries(Object.entries(o).map(([n, v]) => [n, round(v / seconds)]));
    // Milliseconds of CPU per finished goal (/proc counts in 10 ms ticks: long levels only).
    const perGoal = (o: Record<string, number>) =>
      Object.fromEntries(
        Object.entries(o).map(([n, v]) => [n, round2((v * 1000) / Math.max(1, r.completed))]),
      );
    const cpuMsPerGoal = perGoal(cpuSeconds);
    const goalLatency = ms(r.latency);
    // Open loop: a growing backlog shows in p99 (latency runs from the intended start).
    const held = r.errors === 0 && r.dropped === 0 && goalLatency.p99 <= p99BudgetMs;
    const cores = perSecond(cpuSeconds);
    levels.push({
      targetRate: rate,
      stepsPerSecond: r.achievedRate,
      completed: r.completed,
      errors: r.errors,
      dropped: r.dropped,
      goalLatencyMs: goalLatency,
      // In-process the bench's own work is part of the one mesh process.
      meshCores: round(Object.values(cores).reduce((a, b) => a + b, 0) - (cores.bench ?? 0)),
      cores,
      cpuMsPerGoal,
      cpuMsPerGoalTotal: round2(Object.values(cpuMsPerGoal).reduce((a, b) => a + b, 0)),
      serverCpuMsPerGoal: perGoal(serverSeconds),
      machineCores: round((machineBusySeconds() - machine0) / seconds),
      serverCores: perSecond(serverSeconds),
      benchLoopUtilisation: round2(elu),
      ...(processes.length === 0 ? { meshLoopUtilisation: round2(elu) } : {}),
      ...extras?.(r.completed),
      held,
      ...(r.firstError ? { firstError: r.firstError } : {}),
    });
    if (!held) break;
    // Let the backlog of this level drain so the next starts clean.
    await new Promise((r) => setTimeout(r, 500));
  }
  return levels;
}

interface ClosedLoopResult {
  goals: number;
  concurrency: number;
  goalsPerSecond: number;
  errors: number;
  goalLatencyMs: { p50: number; p99: number; max: number };
  cpuMsPerGoal: Record<string, number>;
  cpuMsPerGoalTotal: number;
  serverCpuMsPerGoal: Record<string, number>;
}

/**
 * `total` goals with `concurrency` in flight: the most a side finishes, and its
 * CPU per goal when busy. Less sensitive to other load on the machine than the
 * open-loop ramp (a level that misses its p99 budget by a stall ends the ramp).
 */
async function closedLoop(
  options: Pick<RampOptions, "oneGoal" | "processes" | "benchName"> & {
    total: number;
    concurrency: number;
  },
): Promise<ClosedLoopResult> {
  const { processes, total } = options;
  const latency = new LatencyHistogram();
  const cpu0 = process.cpuUsage();
  const children0 = processes.map((p) => cpuSecondsOf(p.pid));
  const servers0 = commandCpuSeconds(serverCommands);
  const t0 = process.hrtime.bigint();
  let next = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < total) {
        next++;
        const start = process.hrtime.bigint();
        await options.oneGoal().then(
          () => latency.recordSince(start),
          () => errors++,
        );
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const perGoal = (cpuSeconds: number) => round2((cpuSeconds * 1000) / total);
  const cpuMsPerGoal: Record<string, number> = {
    [options.benchName]: perGoal((cpu.user + cpu.system) / 1e6),
  };
  processes.forEach((p, i) => {
    cpuMsPerGoal[p.name] = perGoal(cpuSecondsOf(p.pid) - children0[i]!);
  });
  return {
    goals: total,
    concurrency: options.concurrency,
    goalsPerSecond: Math.round(total / seconds),
    errors,
    goalLatencyMs: ms(latency.summary()),
    cpuMsPerGoal,
    cpuMsPerGoalTotal: round2(Object.values(cpuMsPerGoal).reduce((a, b) => a + b, 0)),
    serverCpuMsPerGoal: Object.fromEntries(
      Object.entries(commandCpuSeconds(serverCommands)).map(([n, c]) => [
        n,
        perGoal(c - servers0[n]!),
      ]),
    ),
  };
}

interface DriveOptions {
  rates: number[];
  durationMs: number;
  warmUpMs: number;
  /** After the ramp, this many goals closed-loop with this many in flight. */
  closed?: { total: number; concurrency: number };
}
interface Driven {
  levels: RateResult[];
  closed: ClosedLoopResult | undefined;
}

/** The floor: its processes up, the same warm-up and levels as the mesh, then down. */
async function driveFloor(
  databaseUrl: string,
  natsUrl: string,
  options: DriveOptions,
): Promise<Driven> {
  const floor = await startFloor(databaseUrl, natsUrl);
  try {
    await runOpenLoop({ rate: 20, durationMs: options.warmUpMs, call: floor.oneGoal });
    const side = { oneGoal: floor.oneGoal, processes: floor.processes, benchName: "bench" };
    const levels = await rampLevels({ ...options, ...side });
    await new Promise((r) => setTimeout(r, 500));
    const closed = options.closed ? await closedLoop({ ...side, ...options.closed }) : undefined;
    return { levels, closed };
  } finally {
    await floor.close();
  }
}

async function startInProcessMesh(databaseUrl: string, natsUrl: string): Promise<BenchMesh> {
  return { mesh: await startTestMesh({ databaseUrl, natsUrl }), children: [] };
}

/** The `message` of an output `{ message }`, as util.echo returns a goal's input; else undefined. */
function echoed(output: Value | undefined): string | undefined {
  if (output?.kind.case !== "structValue") return undefined;
  const fields = output.kind.value.fields;
  const value = fields.message?.kind;
  return Object.keys(fields).length === 1 && value?.case === "stringValue"
    ? value.value
    : undefined;
}

/** Runs the util agent and the load here, level by level, then stops the mesh. */
export async function drive(bench: BenchMesh, options: DriveOptions): Promise<Driven> {
  const { mesh, children } = bench;
  const natsUrl = mesh.config.natsUrl;
  const nc = await connectNats(natsUrl, "bench-goals-events");
  let agentBus: JobBus | undefined;
  try {
    // The agent's bus, tapped: each job's wait from dispatch to its handler starting.
    let queueWait = new LatencyHistogram();
    const bus = await createJetStreamBus({
      servers: natsUrl,
      prefix: mesh.prefix,
      ackWaitMs: 5_000,
      name: "bench-goals-agent",
    });
    agentBus = bus;
    const tapped = new Proxy(bus, {
      get(target, key) {
        if (key === "consumeJobs") {
          const consumeJobs: JobBus["consumeJobs"] = (capability, options) =>
            target.consumeJobs(capability, {
              ...options,
              handler: (d) => {
                mark(d.data.goalId, "a.start");
                const at = d.data.dispatchedAt;
                if (at) queueWait.recordUs((Date.now() - timestampMs(at)) * 1000);
                const out = options.handler(d);
                const goalId = d.data.goalId;
                void Promise.resolve(out).then(() => mark(goalId, "a.end"));
                return out;
              },
            });
          return consumeJobs;
        }
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const registry = createLazyClient(
      RegistryService,
      () => mesh.runtime.endpoint("registry"),
      await mesh.runtime.certs("agent-util"),
    );
    const agent = await runAgent(utilAgent, {
      bus: tapped,
      registry: grpcRegistryLink(registry.client),
      handleSignals: false,
      drainGraceMs: 500,
      concurrency: 256,
    });

    // Every goal's finished event, from the events stream the gateway watches too
    // (only `finished` events are decoded, see finished-event.ts).
    const finished = new Map<string, GoalFinished>();
    const waiters = new Map<string, (finished: GoalFinished) => void>();
    const sub = nc.subscribe(`${busNames(mesh.prefix).eventsWildcard}`, {
      callback: (_err, m) => {
        const event = finishedEvent(m.data);
        if (!event) return;
        mark(event.goalId, "b.finished");
        const w = waiters.get(event.goalId);
        if (w) {
          waiters.delete(event.goalId);
          w(event.finished);
        } else finished.set(event.goalId, event.finished);
      },
    });
    await nc.flush();
    let n = 0;
    // AGENTMESH_STAGE_TRACE_DIR: the bench's stages of each goal (see bench/goal-stages.ts).
    const oneGoal = async (intendedNs?: bigint) => {
      const callUs = Number(process.hrtime.bigint() / 1000n);
      const message = `m${n++}`;
      const { goal } = await mesh.executor.submitGoal({
        tenantId: mesh.tenantId,
        kind: "echo",
        input: { message },
      });
      const goalId = goal!.goalId;
      mark(goalId, "b.submitted");
      if (intendedNs !== undefined) mark(goalId, "b.intended", Number(intendedNs / 1000n));
      mark(goalId, "b.call", callUs);
      const early = finished.get(goalId);
      finished.delete(goalId);
      const end =
        early ??
        (await new Promise<GoalFinished>((resolve, reject) => {
          const t = setTimeout(() => {
            waiters.delete(goalId);
            reject(new Error(`goal ${goalId} not finished in 30 s`));
          }, 30_000);
          waiters.set(goalId, (f) => {
            clearTimeout(t);
            resolve(f);
          });
        }));
      if (end.status !== GoalStatus.SUCCEEDED) {
        throw new Error(`goal ${goalId}: ${GoalStatus[end.status]}`);
      }
      // util.echo answers its input: the goal's output must be that input.
      if (echoed(end.output) !== message) {
        throw new Error(`goal ${goalId}: output ${JSON.stringify(end.output)} is not its input`);
      }
    };

    // Warm up (JIT, connections, caches) before measuring.
    await runOpenLoop({ rate: 20, durationMs: options.warmUpMs, call: oneGoal });

    const side = {
      oneGoal,
      processes: children.map((c) => ({ name: c.name, pid: c.child.process.pid! })),
      benchName: children.length > 0 ? "bench" : "mesh",
    };
    const levels = await rampLevels({
      ...options,
      ...side,
      level: () => {
        queueWait = new LatencyHistogram();
        const statements0 = storeCounts.statements;
        return (completed) => ({
          queueWaitMs: ms(queueWait.summary()),
          ...(children.length === 0
            ? { statementsPerGoal: round((storeCounts.statements - statements0) / completed) }
            : {}),
        });
      },
    });
    await new Promise((r) => setTimeout(r, 500));
    const closed = options.closed ? await closedLoop({ ...side, ...options.closed }) : undefined;
    sub.unsubscribe();
    await agent.stop("bench over");
    registry.close();
    return { levels, closed };
  } finally {
    await agentBus?.close({ graceMs: 0 }).catch(() => undefined);
    await nc.close().catch(() => undefined);
    await Promise.allSettled(children.map((c) => c.child.kill("SIGTERM")));
    await mesh.stop();
  }
}
