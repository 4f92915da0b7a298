/**
 * A parameters version's snapshot: the selector configuration and the
 * per-bucket, per-strategy statistics a selector reads. Training produces one
 * from experiences; while the version serves (as CURRENT or CANARY) every new
 * outcome is folded in, so learning is online between training runs.
 *
 * It is plain JSON: the store may keep it whole (a JSONB column) or split the
 * `buckets` into rows keyed by (version, bucket, strategy) — `observeArm`
 * updates one row at a time.
 *
 * @example
 * const p = emptyParameters({ now: Date.now() });
 * applyOutcome(p, outcome); // mutates p.buckets[bucketKey(outcome.context)][outcome.strategy]
 */
import type { ArmStats } from "./arm-stats.js";
import { observeArm } from "./arm-stats.js";
import { bucketKey } from "./context-bucket.js";
import { DEFAULT_HALF_LIFE_MS } from "./decay.js";
import type { OutcomeRecord } from "./outcome.js";
import { armObservation } from "./outcome.js";
import type { SelectorConfig } from "./selector.js";
import { selectorConfig } from "./selector.js";

/** Strategy statistics of one bucket, by strategy name. */
export type BucketStats = Record<string, ArmStats>;

/** The persisted snapshot of a parameters version (JSON-able). */
export interface ParametersSnapshot {
  /** Format of this object. */
  schema: 1;
  /** Version id, e.g. "v12"; "v0" is the untrained default. */
  version: string;
  /** Epoch milliseconds of training. */
  createdAt: number;
  /** Training run that produced it; empty for the default. */
  runId: string;
  /** Newest experience (epoch ms) included by training; 0 when none. */
  trainedUntil: number;
  /** Experiences included by training. */
  experiences: number;
  /** Half-life of decay for these statistics (ms); 0 means none. */
  halfLifeMs: number;
  config: SelectorConfig;
  /** Statistics by bucket key, then by strategy. */
  buckets: Record<string, BucketStats>;
}

export interface EmptyParametersOptions {
  /** Default "v0". */
  version?: string;
  /** Default 0. */
  now?: number;
  /** Default `selectorConfig()`. */
  config?: SelectorConfig;
  /** Default 7 days. */
  halfLifeMs?: number;
}

/** Parameters with no statistics: what serves before the first training run. */
export function emptyParameters(options: EmptyParametersOptions = {}): ParametersSnapshot {
  return {
    schema: 1,
    version: options.version ?? "v0",
    createdAt: options.now ?? 0,
    runId: "",
    trainedUntil: 0,
    experiences: 0,
    halfLifeMs: options.halfLifeMs ?? DEFAULT_HALF_LIFE_MS,
    config: options.config ?? selectorConfig(),
    buckets: {},
  };
}

/**
 * Folds an outcome into the snapshot's statistics, in place, and returns the
 * updated row. For an in-memory mesh and simulations; a persistent adapter
 * applies `observeArm` to the one stored row instead.
 */
export function applyOutcome(p: ParametersSnapshot, o: OutcomeRecord): ArmStats {
  const key = bucketKey(o.context);
  let bucket = p.buckets[key];
  if (!bucket) {
    bucket = {};
    p.buckets[key] = bucket;
  }
  const row = observeArm(bucket[o.strategy], armObservation(o), p.halfLifeMs);
  bucket[o.strategy] = row;
  return row;
}
