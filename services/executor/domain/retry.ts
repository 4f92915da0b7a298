/**
 * Retry policies with the executor's defaults filled in, and the exponential
 * backoff between attempts. Deterministic (no jitter): the backoff is part of
 * the goal's replayable state.
 *
 * @example
 * const spec = retrySpec(step.retry); // 3 attempts, 200ms × 2 up to 30s
 * backoffMs(spec, 1); // 200: wait after the first attempt failed
 */
import { durationMs } from "@bufbuild/protobuf/wkt";
import type { RetryPolicy } from "../../../gen/agentmesh/v1/common_pb.js";
import type { ErrorData } from "./goal-state.js";

/** A retry policy with every default applied; plain JSON. */
export interface RetrySpec {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
  nonRetryableCodes: string[];
}

/** Defaults of `RetryPolicy` fields left at zero. */
export const retryDefaults = {
  maxAttempts: 3,
  /** Sub-goals already retry their own steps; rerunning a whole child goal is opt-in. */
  subGoalMaxAttempts: 1,
  initialBackoffMs: 200,
  maxBackoffMs: 30_000,
  multiplier: 2,
} as const;

/** Fills the defaults into a step's retry policy. */
export function retrySpec(policy: RetryPolicy | undefined, subGoal = false): RetrySpec {
  const initial = policy?.initialBackoff ? durationMs(policy.initialBackoff) : 0;
  const max = policy?.maxBackoff ? durationMs(policy.maxBackoff) : 0;
  return {
    maxAttempts:
      policy?.maxAttempts ||
      (subGoal ? retryDefaults.subGoalMaxAttempts : retryDefaults.maxAttempts),
    initialBackoffMs: initial || retryDefaults.initialBackoffMs,
    maxBackoffMs: Math.max(max || retryDefaults.maxBackoffMs, initial),
    multiplier: policy?.backoffMultiplier || retryDefaults.multiplier,
    nonRetryableCodes: [...(policy?.nonRetryableCodes ?? [])],
  };
}

/** Wait after attempt `attempt` (from 1) failed, before attempt + 1. */
export function backoffMs(spec: RetrySpec, attempt: number): number {
  const raw = spec.initialBackoffMs * spec.multiplier ** Math.max(0, attempt - 1);
  return Math.round(Math.min(spec.maxBackoffMs, raw));
}

/** Whether a failed attempt `attempt` may be followed by another. */
export function shouldRetry(spec: RetrySpec, attempt: number, error: ErrorData): boolean {
  return (
    error.retryable && !spec.nonRetryableCodes.includes(error.code) && attempt < spec.maxAttempts
  );
}
