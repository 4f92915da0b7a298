/**
 * The contextual instance of `bench learning` through the whole mesh: real
 * executor, planner, registry and learning service, real NATS and PostgreSQL.
 *
 * Eight contexts are 4 goal kinds × 2 input size classes ("s" and "m", the
 * bucket features the planner sends). Each kind's playbook has the same four
 * strategies, one step each, on capability `test.learn-<strategy>` of a
 * simulated agent whose success probability depends on the goal's context
 * (the table of `learning-contextual.ts`, `CLUSTER_MEANS`). The learner
 * tenant's goals are chosen by the learning service (selector `contextual` by
 * tenant flag); in the same run an oracle tenant submits goals of the same
 * contexts with the context's best strategy forced (`SubmitGoal.strategy`).
 *
 * Reported per 100 learner goals (in submission order): the realised success
 * rate; the expected one (the chosen strategy's true probability in the goal's
 * context, the same figure with the coin flips taken out); the oracle's
 * expected rate on the same goals; and the oracle tenant's realised rate.
 *
 * @example
 * const mesh = await startTestMesh({ databaseUrl, natsUrl, agents: [{ definition: simAgent(1) }] });
 * const run = await runLearningMesh(mesh, { goals: 400 });
 * run.windows.at(-1)!.fraction // → ≈ 0.95 (expected success / oracle's)
 */
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { eventsOf, watchToEnd } from "../lib/testing/goals.js";
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { AgentError } from "../sdk/agent/agent-error.js";
import { defineAgent } from "../sdk/agent/define-agent.js";
import { createRng, randomInt } from "../services/learning/domain/random.js";
import type { Benchmark } from "./benchmark.js";
import { CLUSTER_MEANS, STRATEGIES } from "./learning-contextual.js";

/** Goal kinds of the contexts: context c is kind c >> 1, size "s" (c even) or "m" (c odd). */
export const MESH_KINDS = ["sim-summarize", "sim-extract", "sim-translate", "sim-classify"];
const capabilityOf = (strategy: string) => `test.learn-${strategy}`;
/** Makes an input serialise to more than 1 KiB: size class "m" (lib/plan/decision-context.ts). */
const mediumPad = "m".repeat(1_100);

/** Best success probability of each context: what the oracle expects. */
const oracleMean = CLUSTER_MEANS.map((row) => Math.max(...row));
const oracleStrategy = CLUSTER_MEANS.map((row) => STRATEGIES[row.indexOf(Math.max(...row))]!);

/**
 * The simulated agent: skill `test.learn-<strategy>` succeeds with the
 * probability of that strategy in the goal's context (`input.context`), from
 * a seeded stream, and otherwise fails (not retryable).
 */
export function simAgent(seed: number | string = 1) {
  const rng = createRng(`sim-agent-${seed}`);
  const skills: Record<string, Parameters<typeof defineAgent>[0]["skills"][string]> = {};
  STRATEGIES.forEach((strategy, s) => {
    skills[capabilityOf(strategy)] = {
      description: `Succeeds with strategy ${strategy}'s probability in the goal's context.`,
      inputSchema: {
        type: "object",
        properties: { context: { type: "integer", minimum: 0, maximum: CLUSTER_MEANS.length - 1 } },
        required: ["context"],
      },
      tags: ["test"],
      handler: (input: { context: number }) => {
        const p = CLUSTER_MEANS[input.context]![s]!;
        if (rng.next() >= p) {
          throw new AgentError(`simulated failure (p = ${p})`, { code: "SIM", retryable: false });
        }
        return { ok: true };
      },
    };
  });
  return defineAgent({
    name: "sim",
    version: "1.0.0",
    owner: "agentmesh",
    description: "Simulated agent whose success depends on the goal's context (bench learning).",
    skills,
  });
}

/** A kind's playbook: the four strategies, one attempt of one step each. */
async function putPlaybooks(mesh: TestMesh, tenantId: string): Promise<void> {
  const planner = await mesh.clientAs(PlannerService, "planner", "cli");
  for (const goalKind of MESH_KINDS) {
    await planner.putPlaybook({
      tenantId,
      playbook: {
        goalKind,
        description: "Four ways to the same answer; which works best depends on the input.",
        strategies: STRATEGIES.map((name) => ({
          name,
          steps: [
            {
              stepId: "call",
              capability: capabilityOf(name),
              // biome-ignore lint/suspicious/noTemplateCurlyInString: a step template, not a JS template
              input: { context: "${input.context}" },
              retry: { maxAttempts: 1 },
            },
          ],
        })),
      },
    });
  }
}

export interface LearningMeshOptions {
  /** Learner goals; default 1,000. */
  goals?: number;
  /** Goals in flight at once (closed loop); default 4 (more miss the learning deadline under load). */
  concurrency?: number;
  /** Selector of the learner tenant (flag `learning.selector`); default "contextual". */
  selector?: string;
  /** One oracle goal per this many learner goals; 0: no oracle goals. Default 4. */
  oracleEvery?: number;
  /** Seed of the goal sequence; default 1. */
  seed?: number;
  /** Goals per reported window; default 100. */
  window?: number;
  /** Called with each window as it completes. */
  onWindow?: (w: MeshWindow) => void;
}

/** One window of learner goals. */
export interface MeshWindow {
  /** 1-based goal numbers, inclusive. */
  from: number;
  to: number;
  /** Realised success rate of the learner's goals. */
  success: number;
  /** Mean true probability of the strategies the learner chose. */
  expected: number;
  /** Mean best probability of the same goals' contexts. */
  oracle: number;
  /** `expected / oracle`. */
  fraction: number;
  /** Share of goals given the context's best strategy. */
  bestChosen: number;
}

export interface LearningMeshRun {
  windows: MeshWindow[];
  /** The oracle tenant's realised success rate and goal count. */
  oracleRealised: { success: number; goals: number };
  /** Expected success of always choosing the one strategy best on average (no context). */
  bestWithoutContext: number;
  /** Expected success of choosing uniformly at random. */
  random: number;
  /** Learner goals by the selector that chose their strategy (from the plan's rationale). */
  selectors: Record<string, number>;
  /** Learner goals that ended other than SUCCEEDED/FAILED, or whose submit failed. */
  errors: number;
  goalsPerSecond: number;
  firstError?: string;
}

interface GoalResult {
  context: number;
  strategy: string;
  ok: boolean;
}

const round3 = (x: number) => Number(x.toFixed(3));

/** Runs the simulation on a mesh whose agents include `simAgent()`. */
export async function runLearningMesh(
  mesh: TestMesh,
  options: LearningMeshOptions = {},
): Promise<LearningMeshRun> {
  const total = options.goals ?? 1_000;
  const concurrency = options.concurrency ?? 4;
  const windowSize = options.window ?? 100;
  const oracleEvery = options.oracleEvery ?? 4;
  const learner = mesh.tenantId;
  const oracleTenant = "oracle";
  await mesh.runtime.store.tenants.create({ id: oracleTenant, displayName: "Oracle" });
  await mesh.runtime.store.flags.set({
    key: "learning.selector",
    tenantId: learner,
    value: options.selector ?? "contextual",
  });
  await putPlaybooks(mesh, learner);
  await putPlaybooks(mesh, oracleTenant);

  const arrivals = createRng(`mesh-arrivals-${options.seed ?? 1}`);
  const contexts = Array.from({ length: total }, () => randomInt(arrivals, CLUSTER_MEANS.length));
  // Filled with undefined, not holes: `some` skips holes.
  const results: (GoalResult | undefined)[] = Array.from({ length: total }, () => undefined);
  let errors = 0;
  let firstError: string | undefined;
  const oracle = { ok: 0, goals: 0 };
  const selectors: Record<string, number> = {};

  const submit = (tenantId: string, context: number, strategy?: string) =>
    mesh.executor.submitGoal({
      tenantId,
      kind: MESH_KINDS[context >> 1]!,
      input: {
        context,
        text: `goal of context ${context}`,
        ...(context & 1 ? { pad: mediumPad } : {}),
      },
      ...(strategy ? { strategy } : {}),
    });
  /** A learner goal, watched to its end for its plan's rationale. */
  const runGoal = async (tenantId: string, context: number) => {
    const { goal } = await submit(tenantId, context);
    const events = await watchToEnd(mesh.executor, tenantId, goal!.goalId, 60_000);
    const status = eventsOf(events, "finished")[0]?.status;
    // The plan's rationale opens with the deciding selector ("contextual: highest sampled ...").
    const rationale = eventsOf(events, "planned")[0]?.plan?.rationale ?? "";
    return { strategy: goal!.strategy, status, selector: rationale.split(":")[0] ?? "" };
  };
  /**
   * An oracle goal, polled to its end: each WatchGoal is a JetStream consumer
   * that outlives the call for a few seconds, and a long run of watches met
   * the server's consumer limit.
   */
  const runOracleGoal = async (context: number) => {
    const { goal } = await submit(oracleTenant, context, oracleStrategy[context]);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { goal: g } = await mesh.executor.getGoal({
        tenantId: oracleTenant,
        goalId: goal!.goalId,
      });
      if (g!.status >= GoalStatus.SUCCEEDED) return g!.status;
      if (Date.now() > deadline) throw new Error(`oracle goal ${goal!.goalId} did not finish`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  const windows: MeshWindow[] = [];
  let reported = 0;
  const report = () => {
    // Windows close in submission order once every goal in them has finished.
    while (reported + windowSize <= total) {
      const slice = results.slice(reported, reported + windowSize);
      if (slice.some((r) => r === undefined)) return;
      const done = slice as GoalResult[];
      let ok = 0;
      let expected = 0;
      let best = 0;
      let oracleSum = 0;
      for (const r of done) {
        const s = STRATEGIES.indexOf(r.strategy as (typeof STRATEGIES)[number]);
        ok += r.ok ? 1 : 0;
        expected += s >= 0 ? CLUSTER_MEANS[r.context]![s]! : 0;
        best += r.strategy === oracleStrategy[r.context] ? 1 : 0;
        oracleSum += oracleMean[r.context]!;
      }
      const w: MeshWindow = {
        from: reported + 1,
        to: reported + windowSize,
        success: round3(ok / done.length),
        expected: round3(expected / done.length),
        oracle: round3(oracleSum / done.length),
        fraction: round3(expected / oracleSum),
        bestChosen: round3(best / done.length),
      };
      windows.push(w);
      options.onWindow?.(w);
      reported += windowSize;
    }
  };

  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const context = contexts[i]!;
      try {
        const r = await runGoal(learner, context);
        const ok = r.status === GoalStatus.SUCCEEDED;
        if (!ok && r.status !== GoalStatus.FAILED) {
          errors++;
          firstError ??= `goal ended ${GoalStatus[r.status ?? 0]}`;
        }
        results[i] = { context, strategy: r.strategy, ok };
        selectors[r.selector] = (selectors[r.selector] ?? 0) + 1;
        if (oracleEvery > 0 && i % oracleEvery === 0) {
          const status = await runOracleGoal(context);
          oracle.goals++;
          if (status === GoalStatus.SUCCEEDED) oracle.ok++;
        }
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
        results[i] = { context, strategy: "", ok: false };
      }
      report();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;

  const strategyMeans = STRATEGIES.map(
    (_, s) => CLUSTER_MEANS.reduce((a, row) => a + row[s]!, 0) / CLUSTER_MEANS.length,
  );
  return {
    windows,
    oracleRealised: {
      success: round3(oracle.goals > 0 ? oracle.ok / oracle.goals : Number.NaN),
      goals: oracle.goals,
    },
    bestWithoutContext: round3(Math.max(...strategyMeans)),
    random: round3(strategyMeans.reduce((a, b) => a + b, 0) / strategyMeans.length),
    selectors,
    errors,
    goalsPerSecond: Number(
      ((total * (1 + (oracleEvery > 0 ? 1 / oracleEvery : 0))) / seconds).toFixed(1),
    ),
    ...(firstError ? { firstError } : {}),
  };
}

/** One line per window, for logs. */
export function describeWindow(w: MeshWindow): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return `goals ${w.from}–${w.to}: success ${pct(w.success)}, expected ${pct(w.expected)} = ${pct(w.fraction)} of the oracle's ${pct(w.oracle)}; best strategy chosen ${pct(w.bestChosen)}`;
}

export const learningMesh: Benchmark = {
  name: "learning-mesh",
  description:
    "Contextual strategy choice through the whole mesh (8 contexts, 4 strategies): success per 100 goals vs the oracle's in the same run",
  async run({ smoke }) {
    const mesh = await startTestMesh({
      databaseUrl: process.env.DATABASE_URL ?? defaultDatabaseUrl,
      natsUrl: process.env.NATS_URL ?? defaultNatsUrl,
      agents: [{ definition: simAgent() }],
    });
    try {
      const run = await runLearningMesh(mesh, {
        goals: smoke ? 200 : 1_000,
        onWindow: (w) => console.error(`learning-mesh: ${describeWindow(w)}`),
      });
      const first = run.windows[0];
      const last = run.windows.at(-1);
      return {
        ...run,
        summary: {
          firstWindowFraction: first?.fraction,
          lastWindowFraction: last?.fraction,
          rising: first !== undefined && last !== undefined && last.fraction > first.fraction,
        },
      };
    } finally {
      await mesh.stop();
    }
  },
};
