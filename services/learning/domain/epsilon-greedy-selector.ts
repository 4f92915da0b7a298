/**
 * Epsilon-greedy: with probability ε a uniformly random candidate, otherwise
 * the best posterior mean minus the latency/cost penalty. Simple and easy to
 * explain; it keeps exploring at rate ε forever, so its regret grows linearly.
 *
 * @example
 * epsilonGreedySelector(selectorConfig({ epsilonGreedy: { epsilon: 0.05 } }))
 */
import { randomInt } from "./random.js";
import type { Selector, SelectorConfig } from "./selector.js";
import { argmax, fmt, rewardPenalty } from "./selector.js";

export function epsilonGreedySelector(config: SelectorConfig): Selector {
  const { alpha, beta } = config.prior;
  const epsilon = config.epsilonGreedy.epsilon;
  return {
    name: "epsilon-greedy",
    choose(_ctx, candidates, stats, rng) {
      const values = new Array<number>(candidates.length);
      const scores: Record<string, number> = {};
      for (let i = 0; i < candidates.length; i++) {
        const name = candidates[i]!;
        const v = stats[name];
        const s = v?.successes ?? 0;
        const f = v?.failures ?? 0;
        values[i] = (alpha + s) / (alpha + beta + s + f) - rewardPenalty(v, config.penalty);
        scores[name] = values[i]!;
      }
      if (rng.next() < epsilon) {
        return {
          strategy: candidates[randomInt(rng, candidates.length)]!,
          scores,
          reason: `epsilon-greedy: exploring (probability ${fmt(epsilon)})`,
        };
      }
      const i = Math.max(0, argmax(values, rng));
      return {
        strategy: candidates[i]!,
        scores,
        reason: `epsilon-greedy: best penalised posterior mean ${fmt(values[i]!)}`,
      };
    },
  };
}
