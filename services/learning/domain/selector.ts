/**
 * The selector plugin contract and the configuration every built-in selector
 * reads. A selector is a pure function of the candidates' statistics and an
 * `Rng`: no clock, no I/O, so a choice costs microseconds and replays exactly.
 *
 * @example
 * const config = selectorConfig({ penalty: { latencyWeight: 0.2 } });
 * const choice = thompsonSelector(config).choose(ctx, ["solo", "team"], views, rng);
 * // → { strategy: "solo", scores: { solo: 0.81, team: 0.42 }, reason: "..." }
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { ArmView } from "./arm-stats.js";
import type { DecisionContext } from "./context-bucket.js";
import type { Rng } from "./random.js";

/** A selector's decision. */
export interface Choice {
  /** One of the candidates. */
  strategy: string;
  /** Score per candidate as the selector saw it (higher is better). */
  scores: Record<string, number>;
  /** Why, in a sentence. */
  reason: string;
}

/** Statistics per candidate; a missing candidate has never been observed. */
export type ArmViews = Readonly<Record<string, ArmView | undefined>>;

/** A strategy-selection algorithm. */
export interface Selector {
  readonly name: string;
  /**
   * `stats` are the context's own statistics; `shared` (given to selectors
   * that set `usesShared`) the same strategies' statistics over all of the
   * tenant's contexts, which a sparse context may borrow strength from.
   */
  choose(
    ctx: DecisionContext,
    candidates: readonly string[],
    stats: ArmViews,
    rng: Rng,
    shared?: ArmViews,
  ): Choice;
  /** Whether `choose` reads `shared`; computing it costs a pass over the tenant's buckets. */
  readonly usesShared?: boolean;
}

/**
 * How latency and cost reduce a strategy's reward. Each penalty saturates,
 * `weight · x / (x + ref)`, so it lies in [0, weight) whatever the units.
 */
export interface RewardPenalty {
  /** Weight of the latency penalty; default 0.1. */
  latencyWeight: number;
  /** Latency (ms) at which the latency penalty is half its weight; default 10,000. */
  latencyRefMs: number;
  /** Weight of the cost penalty; default 0.1. */
  costWeight: number;
  /** Cost at which the cost penalty is half its weight; default 1. */
  costRef: number;
}

/** When a bucket is cold and how similar experiences seed it. */
export interface WarmStartConfig {
  /** Similar experiences to use per candidate strategy; default 20. */
  k: number;
  /** Neighbours less similar than this are ignored; default 0.3. */
  minSimilarity: number;
  /** Upper bound of pseudo-observations per strategy; default 10. */
  maxPseudoCount: number;
  /**
   * A bucket is cold while the candidates' decayed observations sum below
   * this; warm-start evidence fades linearly to nothing at it. Default 20.
   */
  coldBelow: number;
}

/** Everything the built-in selectors read; part of every parameters version. */
export interface SelectorConfig {
  /** Selector used when no feature flag names one; default "thompson". */
  selector: string;
  /** Beta prior on success; default Beta(1, 1). */
  prior: { alpha: number; beta: number };
  penalty: RewardPenalty;
  /** UCB1 bonus `exploration · sqrt(2 ln N / n)`; default exploration 1. */
  ucb1: { exploration: number };
  /** Exploration probability; default 0.1. */
  epsilonGreedy: { epsilon: number };
  /** The strategy "fixed" picks; empty (default) means the first candidate. */
  fixed: { strategy: string };
  warmStart: WarmStartConfig;
  /**
   * The contextual selector's shared prior: a strategy's tenant-wide success
   * rate counts as up to this many pseudo-observations in each context; default 4.
   */
  contextual: { priorStrength: number };
}

/** A partial configuration, as read from config files or flags. */
export interface SelectorConfigInput {
  selector?: string;
  prior?: Partial<SelectorConfig["prior"]>;
  penalty?: Partial<RewardPenalty>;
  ucb1?: Partial<SelectorConfig["ucb1"]>;
  epsilonGreedy?: Partial<SelectorConfig["epsilonGreedy"]>;
  fixed?: Partial<SelectorConfig["fixed"]>;
  warmStart?: Partial<WarmStartConfig>;
  contextual?: Partial<SelectorConfig["contextual"]>;
}

export const defaultSelectorConfig: Readonly<SelectorConfig> = Object.freeze({
  selector: "thompson",
  prior: { alpha: 1, beta: 1 },
  penalty: { latencyWeight: 0.1, latencyRefMs: 10_000, costWeight: 0.1, costRef: 1 },
  ucb1: { exploration: 1 },
  epsilonGreedy: { epsilon: 0.1 },
  fixed: { strategy: "" },
  warmStart: { k: 20, minSimilarity: 0.3, maxPseudoCount: 10, coldBelow: 20 },
  contextual: { priorStrength: 4 },
});

/** A complete, validated configuration from a partial one (INVALID_ARGUMENT when out of range). */
export function selectorConfig(input: SelectorConfigInput = {}): SelectorConfig {
  const d = defaultSelectorConfig;
  const c: SelectorConfig = {
    selector: input.selector || d.selector,
    prior: { ...d.prior, ...input.prior },
    penalty: { ...d.penalty, ...input.penalty },
    ucb1: { ...d.ucb1, ...input.ucb1 },
    epsilonGreedy: { ...d.epsilonGreedy, ...input.epsilonGreedy },
    fixed: { ...d.fixed, ...input.fixed },
    warmStart: { ...d.warmStart, ...input.warmStart },
    contextual: { ...d.contextual, ...input.contextual },
  };
  const bad: string[] = [];
  const check = (name: string, v: number, ok: (v: number) => boolean) => {
    if (typeof v !== "number" || !Number.isFinite(v) || !ok(v)) bad.push(`${name}=${v}`);
  };
  check("prior.alpha", c.prior.alpha, (v) => v > 0);
  check("prior.beta", c.prior.beta, (v) => v > 0);
  check("penalty.latencyWeight", c.penalty.latencyWeight, (v) => v >= 0);
  check("penalty.latencyRefMs", c.penalty.latencyRefMs, (v) => v > 0);
  check("penalty.costWeight", c.penalty.costWeight, (v) => v >= 0);
  check("penalty.costRef", c.penalty.costRef, (v) => v > 0);
  check("ucb1.exploration", c.ucb1.exploration, (v) => v >= 0);
  check("epsilonGreedy.epsilon", c.epsilonGreedy.epsilon, (v) => v >= 0 && v <= 1);
  check("warmStart.k", c.warmStart.k, (v) => Number.isInteger(v) && v >= 0 && v <= 1000);
  check("warmStart.minSimilarity", c.warmStart.minSimilarity, (v) => v >= -1 && v <= 1);
  check("warmStart.maxPseudoCount", c.warmStart.maxPseudoCount, (v) => v >= 0);
  check("warmStart.coldBelow", c.warmStart.coldBelow, (v) => v >= 0);
  check("contextual.priorStrength", c.contextual.priorStrength, (v) => v >= 0);
  if (bad.length > 0) {
    throw new MeshError(Code.InvalidArgument, `invalid selector config: ${bad.join(", ")}`, {
      details: { invalid: bad },
    });
  }
  return c;
}

/** The latency and cost penalty of an arm, in [0, latencyWeight + costWeight). */
export function rewardPenalty(view: ArmView | undefined, p: RewardPenalty): number {
  if (!view) return 0;
  const lat = Math.max(0, view.meanLatencyMs);
  const cost = Math.max(0, view.meanCost);
  return (
    (p.latencyWeight * lat) / (lat + p.latencyRefMs) + (p.costWeight * cost) / (cost + p.costRef)
  );
}

/** Index of the highest score, ties broken uniformly at random. */
export function argmax(scores: readonly number[], rng: Rng): number {
  let best = -1;
  let bestScore = Number.NEGATIVE_INFINITY;
  let ties = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (s > bestScore) {
      best = i;
      bestScore = s;
      ties = 1;
    } else if (s === bestScore && ++ties > 0 && rng.next() * ties < 1) {
      // Reservoir sampling over the tied maxima keeps the choice uniform.
      best = i;
    }
  }
  return best;
}

/** Rounds a score for a human-readable reason. */
export function fmt(x: number): string {
  return Number.isFinite(x) ? x.toFixed(3) : String(x);
}
