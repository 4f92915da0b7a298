/**
 * Contextual Thompson sampling with hierarchical shared priors. Each context
 * (see `goal-features.ts`; in the mesh, a bucket) keeps its own Beta
 * statistics per strategy; the prior of a strategy in a context is not the
 * flat Beta(α, β) but the strategy's success rate over all contexts, worth up
 * to `contextual.priorStrength` pseudo-observations (never more than the
 * shared evidence behind it). A sparse context thus starts from what the
 * strategy does elsewhere and a busy one is ruled by its own outcomes.
 *
 * @example
 * contextualSelector(selectorConfig()).choose(ctx, ["a", "b"], localViews, rng, sharedViews)
 */
import type { ArmView } from "./arm-stats.js";
import { sampleBeta } from "./random.js";
import type { Selector, SelectorConfig } from "./selector.js";
import { argmax, fmt, rewardPenalty } from "./selector.js";

/** The Beta posterior of one strategy in one context under the shared prior. */
export function contextualPosterior(
  local: ArmView | undefined,
  shared: ArmView | undefined,
  config: SelectorConfig,
): { alpha: number; beta: number } {
  const { alpha, beta } = config.prior;
  const ss = shared?.successes ?? 0;
  const sf = shared?.failures ?? 0;
  const mean = (alpha + ss) / (alpha + beta + ss + sf);
  const strength = Math.min(config.contextual.priorStrength, ss + sf);
  return {
    alpha: alpha + strength * mean + (local?.successes ?? 0),
    beta: beta + strength * (1 - mean) + (local?.failures ?? 0),
  };
}

export function contextualSelector(config: SelectorConfig): Selector {
  return {
    name: "contextual",
    usesShared: true,
    choose(_ctx, candidates, stats, rng, shared) {
      const values = new Array<number>(candidates.length);
      const scores: Record<string, number> = {};
      for (let i = 0; i < candidates.length; i++) {
        const name = candidates[i]!;
        const post = contextualPosterior(stats[name], shared?.[name], config);
        const theta = sampleBeta(rng, post.alpha, post.beta);
        values[i] = theta - rewardPenalty(stats[name] ?? shared?.[name], config.penalty);
        scores[name] = values[i]!;
      }
      const i = Math.max(0, argmax(values, rng));
      const strategy = candidates[i]!;
      const post = contextualPosterior(stats[strategy], shared?.[strategy], config);
      const local = (stats[strategy]?.successes ?? 0) + (stats[strategy]?.failures ?? 0);
      return {
        strategy,
        scores,
        reason: `contextual: highest sampled reward ${fmt(values[i]!)} (posterior mean ${fmt(post.alpha / (post.alpha + post.beta))}, ${fmt(local)} observations in this context on a shared prior)`,
      };
    },
  };
}
