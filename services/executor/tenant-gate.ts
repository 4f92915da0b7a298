/**
 * The executor's side of a tenant's limits: a suspended tenant submits no
 * goals (FAILED_PRECONDITION "tenant suspended"), a goal's input is at most
 * the tenant's `maxGoalInputBytes`, at most `maxConcurrentGoals` of its goals
 * are in flight across every executor replica, and each capability's steps
 * are dispatched at most `stepQuotas[capability]` times a minute across the
 * mesh. Child goals are part of their parent's work: only top-level
 * submissions are checked.
 *
 * The in-flight count is taken under a per-tenant advisory lock in the
 * transaction that inserts the goal, so replicas racing for the last slot
 * cannot both win. Step quotas are shared token buckets (ADR-013); with the
 * store away a dispatch goes ahead (the goal's own writes fail first anyway).
 *
 * @example
 * const gate = new TenantGate({ store, clock });
 * const limits = await gate.admitSubmission(req);          // throws when refused
 * const goal = await gate.createWithin(req.tenantId, limits, (tx) => tx.tenant(t).goals.create(...));
 */
import { create } from "@bufbuild/protobuf";
import {
  type StepJob,
  type StepResult,
  StepResultSchema,
  StepResultStatus,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Store, StoreTransaction } from "../../lib/store/store.js";
import {
  type GoalLimits,
  goalLimitsOf,
  stepQuotaBucketKey,
  stepQuotaFor,
} from "../../lib/tenancy/tenant-settings.js";

export interface TenantGateOptions {
  store: Store;
  /** How long a tenant's settings are used before reading them again. Default 2000 ms. */
  ttlMs?: number;
  /** Monotonic ms. Default `performance.now`. */
  now?: () => number;
}

interface Settings {
  suspended: boolean;
  limits: GoalLimits;
  at: number;
}

export type QuotaDecision =
  | { allow: true }
  | { allow: false; reason: string; retryAfterMs: number };

export class TenantGate {
  readonly #store: Store;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, Promise<Settings>>();

  constructor(options: TenantGateOptions) {
    this.#store = options.store;
    this.#ttlMs = options.ttlMs ?? 2000;
    this.#now = options.now ?? (() => performance.now());
  }

  async #settings(tenantId: string): Promise<Settings> {
    const cached = this.#cache.get(tenantId);
    if (cached) {
      const s = await cached.catch(() => undefined);
      if (s && this.#now() - s.at < this.#ttlMs) return s;
    }
    const read = this.#store.tenants.find(tenantId).then((r) => ({
      suspended: Boolean(r?.suspendedAt),
      limits: goalLimitsOf(r?.limits),
      at: this.#now(),
    }));
    this.#cache.set(tenantId, read);
    read.catch(() => this.#cache.delete(tenantId));
    if (this.#cache.size > 10_000) this.#cache.delete(this.#cache.keys().next().value as string);
    return read;
  }

  /** Checks a top-level submission before it is planned; answers the tenant's goal limits. */
  async admitSubmission(req: {
    tenantId: string;
    input: unknown;
    parentGoalId?: string;
  }): Promise<GoalLimits | undefined> {
    if (req.parentGoalId) return undefined;
    const { suspended, limits } = await this.#settings(req.tenantId);
    if (suspended) {
      throw new MeshError(Code.FailedPrecondition, `tenant ${req.tenantId} is suspended`, {
        details: { reason: "tenant suspended" },
      });
    }
    if (limits.maxGoalInputBytes > 0) {
      const bytes = Buffer.byteLength(JSON.stringify(req.input ?? {}));
      if (bytes > limits.maxGoalInputBytes) {
        throw new MeshError(
          Code.ResourceExhausted,
          `goal input is ${bytes} bytes; tenant ${req.tenantId} may submit at most ${limits.maxGoalInputBytes}`,
          { retryable: false },
        );
      }
    }
    return limits;
  }

  /**
   * Runs `create` (the goal's insert) so that the tenant's in-flight goals
   * stay within `maxConcurrentGoals` across every replica; without a limit it
   * simply runs it.
   */
  async createWithin<T>(
    tenantId: string,
    limits: GoalLimits | undefined,
    create: (tx: StoreTransaction) => Promise<T>,
  ): Promise<T> {
    const max = limits?.maxConcurrentGoals ?? 0;
    if (max <= 0) return create(this.#store);
    return this.#store.transaction(async (tx) => {
      await tx.tenants.lockGoalAdmission(tenantId);
      const inFlight = await tx.tenants.goalsInFlight(tenantId);
      if (inFlight >= max) {
        throw new MeshError(
          Code.ResourceExhausted,
          `tenant ${tenantId} has ${inFlight} goals in flight, the most it may have`,
          { retryable: true, details: { retryAfterMs: 1000 } },
        );
      }
      return create(tx);
    });
  }

  /** Takes one dispatch of `capability` from the tenant's quota, if it has one. */
  async takeStep(tenantId: string, capability: string): Promise<QuotaDecision> {
    let quota: ReturnType<typeof stepQuotaFor>;
    try {
      quota = stepQuotaFor((await this.#settings(tenantId)).limits.stepQuotas, capability);
    } catch {
      return { allow: true };
    }
    if (!quota) return { allow: true };
    try {
      const take = await this.#store.buckets.take(stepQuotaBucketKey(tenantId, quota.pattern), {
        rate: quota.perMinute / 60,
        burst: quota.perMinute,
      });
      if (take.admitted) return { allow: true };
      return {
        allow: false,
        retryAfterMs: take.retryAfterMs,
        reason: `tenant ${tenantId} is over its quota of ${quota.perMinute} ${quota.pattern} steps a minute`,
      };
    } catch {
      return { allow: true }; // the store away: fail open, as the gateways do (ADR-013)
    }
  }
}

/** The failed result a job over its tenant's step quota gets: RESOURCE_EXHAUSTED, retryable (the step backs off). */
export function overQuotaResult(job: StepJob, reason: string): StepResult {
  return create(StepResultSchema, {
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    status: StepResultStatus.FAILED,
    error: { code: "RESOURCE_EXHAUSTED", message: reason, retryable: true },
  });
}
