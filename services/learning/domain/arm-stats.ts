/**
 * Statistics of one strategy ("arm") in one context bucket, as time-decayed
 * counts. `ArmStats` is the persisted, JSON-able row; `ArmView` is what a
 * selector reads: the same counts brought forward to "now".
 *
 * Decay is applied lazily: a row stores counts as of `updatedAt`, and both an
 * update and a read first multiply them by the decay since then. A row can
 * therefore be updated with a read-modify-write of one small object.
 *
 * @example
 * let row = observeArm(undefined, { success: true, latencyMs: 900, cost: 0.2, at: now }, DAY_MS);
 * row = observeArm(row, { success: false, at: now + 1000 }, DAY_MS);
 * armView(row, now + 5000, DAY_MS) // → { successes: ~1, failures: ~1, pulls: 2, ... }
 */
import { decayFactor } from "./decay.js";

/** One persisted arm row (JSON-able). */
export interface ArmStats {
  /** Decayed success count as of `updatedAt`. */
  successes: number;
  /** Decayed failure count as of `updatedAt`. */
  failures: number;
  /** Raw number of outcomes observed (not decayed). */
  pulls: number;
  /** Decay-weighted mean latency in milliseconds. */
  meanLatencyMs: number;
  /** Decay-weighted mean cost. */
  meanCost: number;
  /** Epoch milliseconds the counts are valid at. */
  updatedAt: number;
}

/** What selectors see of an arm. */
export interface ArmView {
  successes: number;
  failures: number;
  pulls: number;
  meanLatencyMs: number;
  meanCost: number;
}

/** One outcome of an arm. */
export interface ArmObservation {
  success: boolean;
  /** Latency in milliseconds; omitted means "unknown" and leaves the mean alone. */
  latencyMs?: number;
  cost?: number;
  /** Epoch milliseconds when the outcome happened. */
  at: number;
  /** Weight of the observation; default 1. */
  weight?: number;
}

export const emptyView: Readonly<ArmView> = Object.freeze({
  successes: 0,
  failures: 0,
  pulls: 0,
  meanLatencyMs: 0,
  meanCost: 0,
});

/**
 * Folds one observation into a row and returns a new row. An observation older
 * than the row (late delivery) is decayed itself rather than rewinding the row.
 */
export function observeArm(
  stats: ArmStats | undefined,
  obs: ArmObservation,
  halfLifeMs: number,
): ArmStats {
  const base = stats ?? { ...emptyView, updatedAt: obs.at };
  const at = Math.max(base.updatedAt, obs.at);
  const old = decayFactor(at - base.updatedAt, halfLifeMs);
  const w = (obs.weight ?? 1) * decayFactor(at - obs.at, halfLifeMs);
  const successes = base.successes * old + (obs.success ? w : 0);
  const failures = base.failures * old + (obs.success ? 0 : w);
  const oldWeight = (base.successes + base.failures) * old;
  return {
    successes,
    failures,
    pulls: base.pulls + 1,
    meanLatencyMs: runningMean(base.meanLatencyMs, oldWeight, obs.latencyMs, w),
    meanCost: runningMean(base.meanCost, oldWeight, obs.cost, w),
    updatedAt: at,
  };
}

function runningMean(mean: number, weight: number, x: number | undefined, w: number): number {
  if (x === undefined || !Number.isFinite(x) || w <= 0) return mean;
  if (weight <= 0) return x;
  return (mean * weight + x * w) / (weight + w);
}

/** A row's counts as of `now`. */
export function armView(stats: ArmStats | undefined, now: number, halfLifeMs: number): ArmView {
  if (!stats) return emptyView;
  const d = decayFactor(now - stats.updatedAt, halfLifeMs);
  // Rows come from storage: a corrupt number must not reach a sampler as NaN.
  return {
    successes: clean(stats.successes) * d,
    failures: clean(stats.failures) * d,
    pulls: clean(stats.pulls),
    meanLatencyMs: clean(stats.meanLatencyMs),
    meanCost: clean(stats.meanCost),
  };
}

function clean(x: number): number {
  return typeof x === "number" && Number.isFinite(x) && x > 0 ? x : 0;
}

/** Adds two views (e.g. warm-start pseudo-counts and observed counts). */
export function addViews(a: ArmView, b: ArmView): ArmView {
  const wa = a.successes + a.failures;
  const wb = b.successes + b.failures;
  const w = wa + wb;
  return {
    successes: a.successes + b.successes,
    failures: a.failures + b.failures,
    pulls: a.pulls + b.pulls,
    meanLatencyMs: w > 0 ? (a.meanLatencyMs * wa + b.meanLatencyMs * wb) / w : 0,
    meanCost: w > 0 ? (a.meanCost * wa + b.meanCost * wb) / w : 0,
  };
}

/** Decayed number of observations behind a view. */
export function observations(view: ArmView): number {
  return view.successes + view.failures;
}
