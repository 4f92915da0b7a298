/**
 * UCB1 (Auer et al. 2002): optimism in the face of uncertainty. Every untried
 * candidate goes first; then the highest `mean − penalty + c·sqrt(2 ln N / n)`
 * wins, where n is the candidate's and N all candidates' decayed observations.
 *
 * @example
 * ucb1Selector(selectorConfig({ ucb1: { exploration: 0.5 } })).choose(ctx, names, views, rng)
 */
import type { Selector, SelectorConfig } from "./selector.js";
import { argmax, fmt, rewardPenalty } from "./selector.js";

/** Below this many decayed observations a candidate counts as untried. */
const untried = 1e-9;

export function ucb1Selector(config: SelectorConfig): Selector {
  const c = config.ucb1.exploration;
  return {
    name: "ucb1",
    choose(_ctx, candidates, stats, rng) {
      let total = 0;
      for (const name of candidates) {
        const v = stats[name];
        total += (v?.successes ?? 0) + (v?.failures ?? 0);
      }
      // Decayed totals can drop below 1; ln must not turn the bonus imaginary.
      const logTotal = Math.log(Math.max(total, 1));
      const values = new Array<number>(candidates.length);
      const scores: Record<string, number> = {};
      let firstUntried = -1;
      for (let i = 0; i < candidates.length; i++) {
        const name = candidates[i]!;
        const v = stats[name];
        const n = (v?.successes ?? 0) + (v?.failures ?? 0);
        if (n < untried) {
          values[i] = Number.POSITIVE_INFINITY;
          if (firstUntried < 0) firstUntried = i;
        } else {
          values[i] =
            v!.successes / n - rewardPenalty(v, config.penalty) + c * Math.sqrt((2 * logTotal) / n);
        }
        scores[name] = values[i]!;
      }
      if (firstUntried >= 0) {
        return {
          strategy: candidates[firstUntried]!,
          scores,
          reason: "ucb1: tries every candidate once before comparing them",
        };
      }
      const i = Math.max(0, argmax(values, rng));
      return {
        strategy: candidates[i]!,
        scores,
        reason: `ucb1: highest upper confidence bound ${fmt(values[i]!)}`,
      };
    },
  };
}
