/**
 * Training: replay experiences, oldest first, with time decay into a fresh
 * parameters snapshot. Deterministic for the same experiences, `now` and
 * options, so a training run can be repeated and audited.
 *
 * @example
 * const next = trainParameters(experiences, {
 *   version: nextVersionId(versions), runId, now: Date.now(), config: current.config,
 * });
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { armView } from "./arm-stats.js";
import { DEFAULT_HALF_LIFE_MS, decayFactor } from "./decay.js";
import type { OutcomeRecord } from "./outcome.js";
import type { ParametersSnapshot } from "./parameters.js";
import { applyOutcome, emptyParameters } from "./parameters.js";
import type { SelectorConfig } from "./selector.js";

export interface TrainOptions {
  /** Id of the new version. */
  version: string;
  /** Id of the training run. */
  runId: string;
  /** Epoch milliseconds of training; newer experiences are ignored. */
  now: number;
  /** Half-life of experience decay; default 7 days, 0 means none. */
  halfLifeMs?: number;
  /** Selector configuration of the new version; default `selectorConfig()`. */
  config?: SelectorConfig;
  /** Experiences that would weigh less than this are skipped; default 1e-4 (~13 half-lives). */
  minWeight?: number;
}

/** What `trainParameters` reads of an experience. */
export type TrainingExperience = Pick<
  OutcomeRecord,
  "context" | "strategy" | "success" | "latencyMs" | "cost" | "finishedAt"
>;

/** Replays experiences into a new parameters snapshot. */
export function trainParameters(
  experiences: Iterable<TrainingExperience>,
  options: TrainOptions,
): ParametersSnapshot {
  const halfLifeMs = options.halfLifeMs ?? DEFAULT_HALF_LIFE_MS;
  if (!(halfLifeMs >= 0) || !Number.isFinite(halfLifeMs)) {
    throw new MeshError(Code.InvalidArgument, `half-life must be ≥ 0 ms, got ${halfLifeMs}`);
  }
  const minWeight = options.minWeight ?? 1e-4;
  const p = emptyParameters({
    version: options.version,
    now: options.now,
    halfLifeMs,
    ...(options.config ? { config: options.config } : {}),
  });
  p.runId = options.runId;
  const kept = [...experiences].filter(
    (e) =>
      e.finishedAt <= options.now &&
      decayFactor(options.now - e.finishedAt, halfLifeMs) >= minWeight,
  );
  // Oldest first, so each row's running means weigh recent outcomes most.
  kept.sort((a, b) => a.finishedAt - b.finishedAt);
  for (const e of kept) {
    applyOutcome(p, {
      goalId: "",
      parametersVersion: "",
      collaborative: false,
      agentResults: [],
      ...e,
    });
    p.trainedUntil = Math.max(p.trainedUntil, e.finishedAt);
  }
  p.experiences = kept.length;
  // Bring every row to `now` so the snapshot reads the same whenever it is loaded.
  for (const bucket of Object.values(p.buckets)) {
    for (const [strategy, row] of Object.entries(bucket)) {
      bucket[strategy] = { ...armView(row, options.now, halfLifeMs), updatedAt: options.now };
    }
  }
  return p;
}
