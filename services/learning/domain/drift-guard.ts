/**
 * The drift guard: decides whether a canary parameters version is promoted,
 * rolled back or kept under observation, from Beta posteriors of its success
 * rate and the baseline's over the same window.
 *
 * - promote when P(θ_canary ≥ θ_baseline − margin) ≥ threshold
 * - roll back when P(θ_canary < θ_baseline) ≥ threshold (checked first: safety wins)
 *
 * Probabilities come from Monte Carlo over the posteriors with an RNG seeded
 * from the counts, so the same counts always give the same verdict (audits
 * can recompute it).
 *
 * @example
 * const v = evaluateCanary({ successes: 180, failures: 20 }, { successes: 850, failures: 150 });
 * // → { action: "promote", pNoWorse: 0.99..., pWorse: 0.0..., ... }
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { Rng } from "./random.js";
import { createRng, sampleBeta } from "./random.js";

/** Success and failure counts of one version over the comparison window. */
export interface Counts {
  successes: number;
  failures: number;
}

export interface DriftGuardOptions {
  /** Tolerated drop of success rate for promotion; default 0.02. */
  margin?: number;
  /** Posterior probability needed to act; default 0.95. */
  threshold?: number;
  /** Canary outcomes needed before any verdict; default 30. */
  minSamples?: number;
  /** Beta prior for both posteriors; default Beta(1, 1). */
  prior?: { alpha: number; beta: number };
  /** Monte Carlo draws; default 20,000 (standard error ≤ 0.0036). */
  draws?: number;
  /** Default: an RNG seeded from the counts and options. */
  rng?: Rng;
}

export type DriftAction = "promote" | "rollback" | "continue";

/** The verdict, with everything an audit record or the stats page needs. */
export interface DriftVerdict {
  action: DriftAction;
  /** P(θ_canary ≥ θ_baseline − margin). */
  pNoWorse: number;
  /** P(θ_canary < θ_baseline). */
  pWorse: number;
  canary: Counts & { mean: number };
  baseline: Counts & { mean: number };
  margin: number;
  threshold: number;
  draws: number;
  /** One sentence, e.g. for `ParametersVersion.note`. */
  reason: string;
}

/** Evaluates a canary against the baseline. INVALID_ARGUMENT for negative counts or bad options. */
export function evaluateCanary(
  canary: Counts,
  baseline: Counts,
  options: DriftGuardOptions = {},
): DriftVerdict {
  const margin = options.margin ?? 0.02;
  const threshold = options.threshold ?? 0.95;
  const minSamples = options.minSamples ?? 30;
  const prior = options.prior ?? { alpha: 1, beta: 1 };
  const draws = options.draws ?? 20_000;
  for (const [name, v] of Object.entries({
    "canary.successes": canary.successes,
    "canary.failures": canary.failures,
    "baseline.successes": baseline.successes,
    "baseline.failures": baseline.failures,
  })) {
    if (!(Number.isFinite(v) && v >= 0)) {
      throw new MeshError(Code.InvalidArgument, `${name} must be a count ≥ 0, got ${v}`);
    }
  }
  if (!(margin >= 0 && margin < 1) || !(threshold > 0.5 && threshold < 1) || !(draws >= 100)) {
    throw new MeshError(
      Code.InvalidArgument,
      "drift guard needs 0 ≤ margin < 1, 0.5 < threshold < 1, draws ≥ 100",
    );
  }
  const rng =
    options.rng ??
    createRng(
      `${canary.successes}/${canary.failures}|${baseline.successes}/${baseline.failures}|${margin}`,
    );
  const ca = prior.alpha + canary.successes;
  const cb = prior.beta + canary.failures;
  const ba = prior.alpha + baseline.successes;
  const bb = prior.beta + baseline.failures;
  let noWorse = 0;
  let worse = 0;
  for (let i = 0; i < draws; i++) {
    const c = sampleBeta(rng, ca, cb);
    const b = sampleBeta(rng, ba, bb);
    if (c >= b - margin) noWorse++;
    if (c < b) worse++;
  }
  const pNoWorse = noWorse / draws;
  const pWorse = worse / draws;
  const n = canary.successes + canary.failures;
  const cMean = ca / (ca + cb);
  const bMean = ba / (ba + bb);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const rates = `canary ${pct(cMean)} over ${Math.round(n)} vs baseline ${pct(bMean)}`;
  let action: DriftAction = "continue";
  let reason: string;
  if (n < minSamples) {
    reason = `drift guard: waiting for ${minSamples} canary outcomes (${Math.round(n)} so far); ${rates}`;
  } else if (pWorse >= threshold) {
    action = "rollback";
    reason = `drift guard: P(canary worse) = ${pct(pWorse)} ≥ ${pct(threshold)}; ${rates}`;
  } else if (pNoWorse >= threshold) {
    action = "promote";
    reason = `drift guard: P(canary ≥ baseline − ${margin}) = ${pct(pNoWorse)} ≥ ${pct(threshold)}; ${rates}`;
  } else {
    reason = `drift guard: undecided, P(no worse) = ${pct(pNoWorse)}, P(worse) = ${pct(pWorse)}; ${rates}`;
  }
  return {
    action,
    pNoWorse,
    pWorse,
    canary: { ...canary, mean: cMean },
    baseline: { ...baseline, mean: bMean },
    margin,
    threshold,
    draws,
    reason,
  };
}
