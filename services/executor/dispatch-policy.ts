/**
 * Policy at dispatch: before the executor publishes a step's job it asks the
 * policy whether this goal (tenant, kind) may use the step's capability (the
 * dispatch action, `lib/policy/actions.ts`). A denied job is not published;
 * The input names the goal's submitter as `principal` (see `actions.ts`), so
 * a rule can key on who a goal acts for, child goals included. A denied job
 * is not published; the step's attempt fails at once with PERMISSION_DENIED and the policy's
 * reason (not retryable), which fails the goal, and the denial is audited.
 * The decision itself goes to the decision log like any call's.
 *
 * @example
 * const policy = dispatchPolicy({ check: runtime.policyCheck("executor", id), executor });
 * const { allow, reason } = policy.authorize(job, { kind: "summarize", submittedBy: "acme/key:abc" });
 */
import { create } from "@bufbuild/protobuf";
import {
  type StepJob,
  type StepResult,
  StepResultSchema,
  StepResultStatus,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { dispatchAction, dispatchInput } from "../../lib/policy/actions.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import type { Decision, PeerIdentity } from "../../lib/rpc/authorizer.js";
import { type AuditEventInput, policyDenialEvent } from "../../lib/store/audit-log.js";

/** The policy as the goal engine asks it before each publish. */
export interface DispatchPolicy {
  /**
   * Decides whether `job` of this goal (its kind, submitter and the
   * submitter's roles) may be published; `meta` is the capability's declared
   * scope and side effect.
   */
  authorize(
    job: StepJob,
    goal: { kind: string; submittedBy?: string; submitterRoles?: readonly string[] },
    meta?: { authScope: string; sideEffect: string },
  ): Decision;
  /** The audit record of a denial. */
  denialEvent(job: StepJob, reason: string): AuditEventInput;
}

export function dispatchPolicy(deps: {
  /** Decides and writes the decision log (`runtime.policyCheck`). */
  check: (input: PolicyInput) => Decision;
  /** The executor's own identity: the peer of the dispatch action. */
  executor: PeerIdentity;
}): DispatchPolicy {
  return {
    authorize: (job, goal, meta) =>
      deps.check(
        dispatchInput({
          executor: deps.executor,
          tenantId: job.tenantId,
          goalId: job.goalId,
          goalKind: goal.kind,
          ...(goal.submittedBy ? { submittedBy: goal.submittedBy } : {}),
          ...(goal.submitterRoles ? { submitterRoles: goal.submitterRoles } : {}),
          ...(meta ? { authScope: meta.authScope, sideEffect: meta.sideEffect } : {}),
          capability: job.capability,
          stepId: job.stepId,
          attempt: job.attempt,
        }),
      ),
    denialEvent: (job, reason) => dispatchDenialEvent(deps.executor, job, reason),
  };
}

/** The failed result a denied job gets instead of an agent's: PERMISSION_DENIED, not retryable. */
export function deniedResult(job: StepJob, reason: string): StepResult {
  return create(StepResultSchema, {
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    status: StepResultStatus.FAILED,
    error: {
      code: "PERMISSION_DENIED",
      message: `step "${job.stepId}" may not be dispatched to ${job.capability}: ${reason}`,
      retryable: false,
    },
  });
}

/** The audit record of a denied dispatch. */
function dispatchDenialEvent(
  executor: PeerIdentity,
  job: StepJob,
  reason: string,
): AuditEventInput {
  const event = policyDenialEvent({
    peer: executor.spiffeId,
    method: `/${dispatchAction.full}`,
    reason,
    tenantId: job.tenantId,
  });
  return {
    ...event,
    details: {
      ...event.details,
      goalId: job.goalId,
      stepId: job.stepId,
      capability: job.capability,
      attempt: job.attempt,
    },
  };
}
