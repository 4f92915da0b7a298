/**
 * Forgetting per observation ("discounted" statistics): each new outcome of a
 * strategy in a context first multiplies that strategy's counts there by
 * `discount`, then adds itself. Its counts therefore never exceed
 * 1 / (1 − discount) (the effective memory: 200 outcomes at the default
 * 0.995) and an outcome k outcomes old weighs discount^k. Only the observed
 * strategy is discounted: discounting all of them made untried strategies
 * fade back to the prior and be re-explored forever (the bench lost 4 % of the
 * oracle to it).
 *
 * Discounting alone recovers slowly from a sharp degradation (a long good
 * record must be discounted away first), so `observeWithReset` adds a second,
 * short memory and replaces the long statistics when the two disagree. This
 * complements the time half-life of `arm-stats.ts` (which forgets by the
 * clock, not by traffic); `bench learning` measures recovery with it.
 *
 * @example
 * const views = {}; observeDiscounted(views, "team", true, 0.99);
 */
import type { ArmView } from "./arm-stats.js";

/** Default discount per observation: an effective memory of 200 outcomes per strategy. */
export const DEFAULT_DISCOUNT = 0.995;

function blank(): ArmView {
  return { successes: 0, failures: 0, pulls: 0, meanLatencyMs: 0, meanCost: 0 };
}

/**
 * Folds one outcome of `strategy` into a context's statistics, in place,
 * after discounting every strategy's counts. `discount` 1 forgets nothing.
 */
export function observeDiscounted(
  views: Record<string, ArmView>,
  strategy: string,
  success: boolean,
  discount: number = DEFAULT_DISCOUNT,
): void {
  if (!(discount > 0 && discount <= 1)) throw new RangeError(`discount ${discount} not in (0, 1]`);
  let v = views[strategy];
  if (!v) {
    v = blank();
    views[strategy] = v;
  }
  v.successes *= discount;
  v.failures *= discount;
  if (success) v.successes += 1;
  else v.failures += 1;
  v.pulls += 1;
}

/** The most counts any strategy can hold under `discount`: 1 / (1 − discount). */
export function effectiveMemory(discount: number): number {
  return discount >= 1 ? Number.POSITIVE_INFINITY : 1 / (1 - discount);
}

/** The defaults of `observeWithReset`, which the service's stored statistics use too. */
export const DEFAULT_FORGETTING = {
  discount: DEFAULT_DISCOUNT,
  recentDiscount: 0.85,
  drop: 0.4,
  minRecent: 4,
} as const;

/** When a strategy's recent outcomes say it has changed (see `observeWithReset`). */
export interface ResetOptions {
  /** Discount of the long statistics; default `DEFAULT_DISCOUNT`. */
  discount?: number;
  /** Discount of the recent statistics; default 0.85 (memory of ~7 outcomes). */
  recentDiscount?: number;
  /** Reset when the recent mean is this far below the long one; default 0.4. */
  drop?: number;
  /** ... and the recent statistics hold at least this much evidence; default 4. */
  minRecent?: number;
}

/**
 * `observeDiscounted` on two timescales: when a strategy's recent success
 * rate falls `drop` below its long-run rate, its long statistics are replaced
 * by the recent ones, so a degraded strategy is dropped after a handful of
 * its own failures rather than after its record has been discounted away.
 * Returns whether it reset.
 */
export function observeWithReset(
  long: Record<string, ArmView>,
  recent: Record<string, ArmView>,
  strategy: string,
  success: boolean,
  options: ResetOptions = {},
): boolean {
  const d = DEFAULT_FORGETTING;
  observeDiscounted(long, strategy, success, options.discount ?? d.discount);
  observeDiscounted(recent, strategy, success, options.recentDiscount ?? d.recentDiscount);
  const l = long[strategy]!;
  const r = recent[strategy]!;
  const rn = r.successes + r.failures;
  if (rn < (options.minRecent ?? d.minRecent)) return false;
  const lm = l.successes / (l.successes + l.failures);
  if (lm - r.successes / rn < (options.drop ?? d.drop)) return false;
  long[strategy] = { ...r, pulls: l.pulls };
  return true;
}
