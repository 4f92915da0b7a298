/**
 * Goals that run as a step of another goal: starting the child (under the
 * step attempt's idempotency key, so a repeated start finds the same child),
 * cancelling it, telling the parent when it finished, and the ticker's
 * re-check of a running sub-goal step whose notification may have been lost.
 *
 * @example
 * const children = new ChildGoals({ store, log, goals: engine });
 * await children.start(parentState, command); // a startChildGoal command
 */
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import type { Store } from "../../lib/store/store.js";
import { parseTraceparent } from "../../lib/telemetry/trace-context.js";
import { type GoalCommand, type GoalState, isTerminal } from "./domain/index.js";
import type { GoalOperations, Submitted } from "./goal-engine.js";
import { type LoadedGoal, loadGoal } from "./goal-store.js";

export interface ChildGoalsDeps {
  store: Store;
  log: Logger;
  /** The engine: submits children and feeds parents. */
  goals: GoalOperations;
}

/** The trace id and span id of a traceparent, as a goal stores them. */
function traceOf(traceparent: string | undefined): { traceId?: string; traceSpanId?: string } {
  const sc = parseTraceparent(traceparent);
  return sc ? { traceId: sc.traceId, traceSpanId: sc.spanId } : {};
}

type StartChild = Extract<GoalCommand, { type: "startChildGoal" }>;
type CancelChild = Extract<GoalCommand, { type: "cancelChildGoal" }>;

const finishedStatuses = ["SUCCEEDED", "FAILED", "CANCELLED"];

export class ChildGoals {
  readonly #d: ChildGoalsDeps;

  constructor(deps: ChildGoalsDeps) {
    this.#d = deps;
  }

  /** Submits the child goal of a sub-goal step and records it on the parent. */
  async start(parent: GoalState, c: StartChild): Promise<void> {
    const { goals } = this.#d;
    let submitted: Submitted;
    try {
      submitted = await goals.submit({
        tenantId: parent.tenantId,
        kind: c.kind,
        input: c.input,
        idempotencyKey: c.idempotencyKey,
        deadlineMs: c.deadlineMs,
        parentGoalId: parent.goalId,
        parentStepId: c.stepId,
        actor: "executor",
        // The child acts for whoever the parent acts for: the policy sees the same submitter.
        ...(parent.submittedBy ? { submittedBy: parent.submittedBy } : {}),
        ...(parent.submitterRoles?.length ? { submitterRoles: parent.submitterRoles } : {}),
        // One trace per goal tree: the child continues its parent's trace.
        ...traceOf(parent.traceparent),
      });
    } catch (err) {
      const e = MeshError.from(err);
      if (e.retryable) throw e;
      await goals.apply(parent.tenantId, parent.goalId, (_s, now) => [
        {
          type: "childGoalFinished",
          stepId: c.stepId,
          attempt: c.attempt,
          status: GoalStatus.FAILED,
          error: { code: e.codeName, message: e.message, retryable: false },
          at: now,
        },
      ]);
      return;
    }
    const child = submitted.loaded;
    const { state: after } = await goals.apply(parent.tenantId, parent.goalId, (_s, now) => [
      {
        type: "childGoalStarted",
        stepId: c.stepId,
        attempt: c.attempt,
        childGoalId: child.goal.id,
        at: now,
      },
    ]);
    // The parent stopped meanwhile: the child has no one to report to.
    if (isTerminal(after.status) && !isTerminal(child.state.status)) {
      await goals.cancel(parent.tenantId, child.goal.id, "the parent goal finished");
    } else if (!submitted.created && isTerminal(child.state.status)) {
      await this.notifyParent(child);
    }
  }

  /** Cancels a sub-goal step's child (found by its idempotency key when not yet recorded). */
  async cancel(parent: GoalState, c: CancelChild): Promise<void> {
    let childId = c.childGoalId;
    if (!childId) {
      const page = await this.#d.store
        .tenant(parent.tenantId)
        .goals.list({ parentGoalId: parent.goalId, pageSize: 500 });
      childId = page.goals.find((g) => g.idempotencyKey === c.idempotencyKey)?.id ?? "";
    }
    if (childId) await this.#d.goals.cancel(parent.tenantId, childId, c.reason);
  }

  /** Tells a parent goal that its child finished. */
  async notifyParent(child: LoadedGoal): Promise<void> {
    const { goal, state } = child;
    if (!goal.parentGoalId || !goal.parentStepId) return;
    const attempt = Number(goal.idempotencyKey?.split(":").pop());
    if (!Number.isInteger(attempt)) return;
    await this.#d.goals.apply(goal.tenantId, goal.parentGoalId, (_s, now) => [
      {
        type: "childGoalFinished",
        stepId: goal.parentStepId!,
        attempt,
        childGoalId: goal.id,
        status: state.status,
        ...(state.output !== undefined ? { output: state.output } : {}),
        ...(state.error ? { error: state.error } : {}),
        at: now,
      },
    ]);
  }

  /**
   * A running sub-goal step came due: if its child finished, tell the parent
   * (the notification may have been lost); if no child was recorded, start it
   * again from `recovery` (the same idempotency key finds a child already made).
   * True when the parent was told, which rewrote the step's due time.
   */
  async recheck(
    state: GoalState,
    stepId: string,
    childGoalId: string | undefined,
    recovery: readonly GoalCommand[],
  ): Promise<boolean> {
    const tenant = this.#d.store.tenant(state.tenantId);
    if (childGoalId) {
      const child = await tenant.goals.find(childGoalId);
      if (child && finishedStatuses.includes(child.status)) {
        await this.notifyParent(await loadGoal(tenant, child.id));
        return true;
      }
      return false;
    }
    for (const c of recovery) {
      if (c.type !== "startChildGoal" || c.stepId !== stepId) continue;
      await this.start(state, c).catch((err: unknown) =>
        this.#d.log.warn({ err, goalId: state.goalId, command: c.type }, "command failed"),
      );
    }
    return false;
  }
}
