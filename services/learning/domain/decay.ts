/**
 * Exponential time decay shared by strategy statistics, agent reliability and
 * training: an observation `halfLifeMs` old counts half as much as a fresh one.
 *
 * @example
 * decayFactor(7 * DAY_MS, DEFAULT_HALF_LIFE_MS) // → 0.5
 */

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
/** Default half-life of experiences in training and strategy statistics: 7 days. */
export const DEFAULT_HALF_LIFE_MS = 7 * DAY_MS;

/**
 * The weight left after `elapsedMs`. A half-life of 0 (or anything not
 * positive and finite) means no decay, which keeps the setting JSON-safe.
 */
export function decayFactor(elapsedMs: number, halfLifeMs: number): number {
  if (!(elapsedMs > 0) || !(halfLifeMs > 0) || !Number.isFinite(halfLifeMs)) return 1;
  return 2 ** (-elapsedMs / halfLifeMs);
}
