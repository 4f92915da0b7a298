/**
 * Thompson sampling: draw a success probability from each candidate's Beta
 * posterior, subtract the latency/cost penalty, pick the highest. Exploration
 * falls away by itself as posteriors narrow, which is why it is the default.
 *
 * @example
 * thompsonSelector(selectorConfig()).choose(ctx, ["a", "b"], { a: viewA }, rng)
 */
import { sampleBeta } from "./random.js";
import type { Selector, SelectorConfig } from "./selector.js";
import { argmax, fmt, rewardPenalty } from "./selector.js";

export function thompsonSelector(config: SelectorConfig): Selector {
  const { alpha, beta } = config.prior;
  return {
    name: "thompson",
    choose(_ctx, candidates, stats, rng) {
      const values = new Array<number>(candidates.length);
      const scores: Record<string, number> = {};
      for (let i = 0; i < candidates.length; i++) {
        const name = candidates[i]!;
        const v = stats[name];
        const theta = sampleBeta(rng, alpha + (v?.successes ?? 0), beta + (v?.failures ?? 0));
        values[i] = theta - rewardPenalty(v, config.penalty);
        scores[name] = values[i]!;
      }
      const i = Math.max(0, argmax(values, rng));
      const strategy = candidates[i]!;
      const v = stats[strategy];
      const n = (v?.successes ?? 0) + (v?.failures ?? 0);
      const mean = (alpha + (v?.successes ?? 0)) / (alpha + beta + n);
      return {
        strategy,
        scores,
        reason: `thompson: highest sampled reward ${fmt(values[i]!)} (posterior mean ${fmt(mean)} over ${fmt(n)} decayed observations)`,
      };
    },
  };
}
