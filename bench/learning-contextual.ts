/**
 * The contextual instance of `bench learning`: 4 strategies, 8 context
 * clusters (4 goal kinds × 2 input shapes, keyed by `goalFeatures`), a success
 * probability per cluster and strategy, horizon 5,000. At goal 2,500 one
 * strategy (the best in two clusters) degrades to 0.3 everywhere.
 *
 * Measured per selector with pseudo-reward (the true success probability of
 * the chosen strategy in the goal's cluster), as a fraction of the oracle that
 * knows every cluster's best strategy at that time:
 * - `learned`: goals 1,001–2,500 (after 1,000 goals, before the drift);
 * - `recovered`: goals 2,601–2,700 (the 100 goals ending 200 after the drift),
 *   against the new oracle;
 * - `recoveryGoals`: goals after the drift until a 100-goal window first
 *   reaches 95 % of the new oracle (checked every 10 goals; NaN, `null` in
 *   the JSON output, when never).
 *
 * Every selector sees the same goal sequence and, per cluster and strategy,
 * the same reward stream (common random numbers). The non-contextual
 * selectors keep one table of statistics, as if every goal were one context;
 * "contextual" keeps one per context plus the shared level, both discounted per
 * observation (0.995 per context, 0.999 shared) and reset on a drop of the
 * recent rate (`observeWithReset` defaults); "contextual-no-forgetting" is the
 * same without either, to show what forgetting buys.
 */
import type { ArmView } from "../services/learning/domain/arm-stats.js";
import type { DecisionContext } from "../services/learning/domain/context-bucket.js";
import { observeDiscounted, observeWithReset } from "../services/learning/domain/discounting.js";
import { contextKey, goalFeatures } from "../services/learning/domain/goal-features.js";
import { createRng, randomInt } from "../services/learning/domain/random.js";
import { selectorConfig } from "../services/learning/domain/selector.js";
import { selectorRegistry } from "../services/learning/domain/selector-registry.js";

export const STRATEGIES = ["solo", "team", "review", "search"] as const;

/** Success probability per cluster (rows) and strategy (columns); each strategy is best in two. */
export const CLUSTER_MEANS: readonly (readonly number[])[] = [
  [0.9, 0.7, 0.55, 0.6],
  [0.85, 0.6, 0.75, 0.5],
  [0.6, 0.9, 0.7, 0.55],
  [0.55, 0.85, 0.6, 0.75],
  [0.7, 0.55, 0.9, 0.6],
  [0.6, 0.75, 0.85, 0.5],
  [0.55, 0.6, 0.7, 0.9],
  [0.75, 0.5, 0.6, 0.85],
];
/** Strategy that degrades, when, and to what. */
export const DRIFT = { strategy: 0, atGoal: 2_500, to: 0.3 };
export const HORIZON = 5_000;
export const LOCAL_DISCOUNT = 0.995;
export const SHARED_DISCOUNT = 0.999;

export const CONTEXTUAL_SELECTORS = [
  "contextual",
  "contextual-no-forgetting",
  "thompson",
  "ucb1",
  "epsilon-greedy",
  "fixed",
] as const;

const kinds = ["summarize", "extract", "translate", "classify"];
const inputs = ['{"url": "https://example.com/a", "lang": "de"}', '{"text": "…", "max_words": 80}'];

/** The decision context of a cluster: its kind and input shape differ, tenant and size do not. */
export function clusterContext(c: number): DecisionContext {
  return {
    tenantId: "bench",
    goalKind: kinds[c >> 1]!,
    sizeClass: "",
    text: inputs[c & 1]!,
  };
}

function meanAt(cluster: number, strategy: number, goal: number): number {
  if (strategy === DRIFT.strategy && goal >= DRIFT.atGoal) return DRIFT.to;
  return CLUSTER_MEANS[cluster]![strategy]!;
}

function oracleAt(cluster: number, goal: number): number {
  let best = 0;
  for (let s = 0; s < STRATEGIES.length; s++) best = Math.max(best, meanAt(cluster, s, goal));
  return best;
}

const blank = (): ArmView => ({
  successes: 0,
  failures: 0,
  pulls: 0,
  meanLatencyMs: 0,
  meanCost: 0,
});

export interface ContextualRun {
  /** Pseudo-reward of each goal and the oracle's, in order. */
  reward: Float64Array;
  oracle: Float64Array;
}

/** One run of one selector on one seed. */
export function runContextual(
  selectorName: string,
  seed: number,
  horizon = HORIZON,
): ContextualRun {
  const config = selectorConfig({ penalty: { latencyWeight: 0, costWeight: 0 } });
  const base = selectorName.startsWith("contextual") ? "contextual" : selectorName;
  const forget = selectorName === "contextual";
  const selector = selectorRegistry(config).get(base);
  const contexts = CLUSTER_MEANS.map((_, c) => clusterContext(c));
  const keys = contexts.map((ctx) => contextKey(goalFeatures(ctx)));
  const arrivals = createRng(`arrivals-${seed}`);
  const streams = CLUSTER_MEANS.map((_, c) =>
    STRATEGIES.map((_, s) => createRng(`reward-${seed}-${c}-${s}`)),
  );
  const rng = createRng(`${selectorName}-${seed}`);
  const local = new Map<string, Record<string, ArmView>>();
  const recent = new Map<string, Record<string, ArmView>>();
  const shared: Record<string, ArmView> = {};
  const sharedRecent: Record<string, ArmView> = {};
  for (const s of STRATEGIES) shared[s] = blank();
  const reward = new Float64Array(horizon);
  const oracle = new Float64Array(horizon);
  const index = new Map<string, number>(STRATEGIES.map((s, i) => [s, i]));
  for (let t = 0; t < horizon; t++) {
    const c = randomInt(arrivals, CLUSTER_MEANS.length);
    const key = keys[c]!;
    let views = local.get(key);
    if (!views) {
      views = {};
      for (const s of STRATEGIES) views[s] = blank();
      local.set(key, views);
    }
    // Non-contextual selectors read the shared table only (one context for all goals).
    const { strategy } =
      base === "contextual"
        ? selector.choose(contexts[c]!, STRATEGIES, views, rng, shared)
        : selector.choose(contexts[c]!, STRATEGIES, shared, rng);
    const s = index.get(strategy)!;
    const mu = meanAt(c, s, t);
    const success = streams[c]![s]!.next() < mu;
    reward[t] = mu;
    oracle[t] = oracleAt(c, t);
    if (forget) {
      let r = recent.get(key);
      if (!r) {
        r = {};
        recent.set(key, r);
      }
      observeWithReset(views, r, strategy, success, { discount: LOCAL_DISCOUNT });
    } else observeDiscounted(views, strategy, success, 1);
    if (forget)
      observeWithReset(shared, sharedRecent, strategy, success, { discount: SHARED_DISCOUNT });
    else observeDiscounted(shared, strategy, success, 1);
  }
  return { reward, oracle };
}

function ratio(r: ContextualRun, from: number, to: number): number {
  let a = 0;
  let b = 0;
  for (let t = from; t < to; t++) {
    a += r.reward[t]!;
    b += r.oracle[t]!;
  }
  return a / b;
}

/** Goals after the drift until a 100-goal window reaches 95 % of the oracle; NaN if never. */
function recoveryGoals(r: ContextualRun): number {
  for (let end = DRIFT.atGoal + 100; end <= r.reward.length; end += 10) {
    if (ratio(r, end - 100, end) >= 0.95) return end - DRIFT.atGoal;
  }
  return Number.NaN;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface SelectorFigures {
  /** Median over seeds of the success rate in goals 1,001–2,500 / the oracle's. */
  learned: number;
  /** Median of the rate in goals 2,601–2,700 / the new oracle's. */
  recovered: number;
  /** Median of the goals after the drift until 95 % of the new oracle (NaN: never). */
  recoveryGoals: number;
  /** Median of the rate over all 5,000 goals / the oracle's. */
  overall: number;
}

/** The selectors on the same seeds 1..seeds; figures are medians over seeds. */
export function contextualBench(
  seeds: number,
  selectors: readonly string[] = CONTEXTUAL_SELECTORS,
): Record<string, SelectorFigures> {
  const out: Record<string, SelectorFigures> = {};
  for (const name of selectors) {
    const runs = Array.from({ length: seeds }, (_, i) => runContextual(name, i + 1));
    const round = (x: number) => Number(x.toFixed(3));
    out[name] = {
      learned: round(median(runs.map((r) => ratio(r, 1_000, DRIFT.atGoal)))),
      recovered: round(median(runs.map((r) => ratio(r, DRIFT.atGoal + 100, DRIFT.atGoal + 200)))),
      recoveryGoals: median(runs.map(recoveryGoals)),
      overall: round(median(runs.map((r) => ratio(r, 0, HORIZON)))),
    };
  }
  return out;
}

/** The targets of issue 25, checked on figures from `contextualBench`. */
export const CONTEXTUAL_TARGETS = {
  /** Contextual success after 1,000 goals, as a fraction of the oracle's. */
  learned: 0.95,
  /** ... at least this much (fraction of the oracle) above non-contextual Thompson. */
  marginOverThompson: 0.15,
  /** Back to 95 % of the new oracle within this many goals of the drift. */
  recoveryGoals: 200,
};

export function contextualTargetsMet(f: Record<string, SelectorFigures>): boolean {
  const c = f.contextual!;
  const t = f.thompson!;
  return (
    c.learned >= CONTEXTUAL_TARGETS.learned &&
    c.learned - t.learned >= CONTEXTUAL_TARGETS.marginOverThompson &&
    c.recoveryGoals <= CONTEXTUAL_TARGETS.recoveryGoals &&
    c.recovered >= 0.95
  );
}
