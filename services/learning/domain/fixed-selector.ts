/**
 * Fixed: always the configured strategy (or the first candidate when it is not
 * offered). A baseline, and an operator's override when learning must stop.
 *
 * @example
 * fixedSelector(selectorConfig({ fixed: { strategy: "solo" } })).choose(ctx, ["team", "solo"], {}, rng)
 * // → { strategy: "solo", ... }
 */
import type { Selector, SelectorConfig } from "./selector.js";

export function fixedSelector(config: SelectorConfig): Selector {
  const wanted = config.fixed.strategy;
  return {
    name: "fixed",
    choose(_ctx, candidates) {
      const offered = wanted !== "" && candidates.includes(wanted);
      const strategy = offered ? wanted : candidates[0]!;
      const scores: Record<string, number> = {};
      for (const name of candidates) scores[name] = name === strategy ? 1 : 0;
      return {
        strategy,
        scores,
        reason: offered
          ? `fixed: configured strategy ${strategy}`
          : wanted === ""
            ? `fixed: first candidate ${strategy}`
            : `fixed: configured strategy ${wanted} not offered; first candidate ${strategy}`,
      };
    },
  };
}
