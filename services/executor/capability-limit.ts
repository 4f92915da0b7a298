/**
 * A capability's rate limit at dispatch (the tool named like it declares
 * `rate_limit`): per tenant and capability, across every executor replica,
 * one shared token bucket in PostgreSQL (ADR-013), `capability:<tenant>:<capability>`.
 *
 * A step over the limit is **delayed, not failed**: the executor reserves
 * the next free turn in the bucket (`store.buckets.reserve`) and, instead of
 * publishing the job, ends the attempt as `RATE_LIMITED` (retryable, not
 * charged to the step's retries) with its turn as `details.notBeforeMs`; the
 * step's next attempt starts exactly at that turn and is published without
 * asking the bucket again (its token is reserved). Turns are handed out in
 * order, so the mesh dispatches at the limit without retry storms. A turn
 * later than the goal's deadline is not reserved: the step fails with
 * RESOURCE_EXHAUSTED (the goal could not finish in time anyway). With the
 * store away a dispatch goes ahead (fail open, as the tenant limits do).
 *
 * @example
 * const verdict = await limiter.admit(job, { perSecond: 5, burst: 5 }, state.deadlineMs);
 * if (verdict.kind === "wait") batcher.add(rateLimitedResult(job, verdict.notBeforeMs, verdict.reason));
 */
import { create } from "@bufbuild/protobuf";
import {
  type StepJob,
  type StepResult,
  StepResultSchema,
  StepResultStatus,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import type { Store } from "../../lib/store/store.js";
import { rateLimitedCode } from "./domain/index.js";

export type LimitVerdict =
  | { kind: "now" }
  | { kind: "wait"; notBeforeMs: number; reason: string }
  | { kind: "refused"; reason: string };

/** The bucket of a tenant's dispatches of one capability. */
export function capabilityBucketKey(tenantId: string, capability: string): string {
  return `capability:${tenantId}:${capability}`;
}

export class CapabilityLimiter {
  readonly #store: Pick<Store, "buckets">;
  readonly #now: () => number;

  constructor(options: { store: Pick<Store, "buckets">; now: () => number }) {
    this.#store = options.store;
    this.#now = options.now;
  }

  /** Reserves the job's turn: now, later (with when and why), or none before `deadlineMs`. */
  async admit(
    job: StepJob,
    limit: { perSecond: number; burst: number },
    deadlineMs: number,
  ): Promise<LimitVerdict> {
    const what = `${job.capability} is limited to ${limit.perSecond}/s (burst ${limit.burst}) per tenant`;
    let r: Awaited<ReturnType<Store["buckets"]["reserve"]>>;
    try {
      r = await this.#store.buckets.reserve(
        capabilityBucketKey(job.tenantId, job.capability),
        { rate: limit.perSecond, burst: limit.burst },
        deadlineMs - this.#now(),
      );
    } catch {
      return { kind: "now" }; // the store away: fail open (ADR-013)
    }
    if (!r.reserved) {
      return {
        kind: "refused",
        reason: `${what}: tenant ${job.tenantId} has no turn left before the goal's deadline`,
      };
    }
    if (r.waitMs === 0) return { kind: "now" };
    return {
      kind: "wait",
      // Counted from the answer, not the question: a turn may come late, never early.
      notBeforeMs: this.#now() + r.waitMs,
      reason: `${what}: step "${job.stepId}" waits ${r.waitMs} ms for its turn`,
    };
  }
}

/** The attempt a rate limit held back: RATE_LIMITED, retryable, retried at `notBeforeMs`. */
export function rateLimitedResult(job: StepJob, notBeforeMs: number, reason: string): StepResult {
  return create(StepResultSchema, {
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    status: StepResultStatus.FAILED,
    error: { code: rateLimitedCode, message: reason, retryable: true, details: { notBeforeMs } },
  });
}

/** The attempt that found no turn before the goal's deadline: RESOURCE_EXHAUSTED, not retryable. */
export function noTurnResult(job: StepJob, reason: string): StepResult {
  return create(StepResultSchema, {
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    status: StepResultStatus.FAILED,
    error: { code: "RESOURCE_EXHAUSTED", message: reason, retryable: false },
  });
}
