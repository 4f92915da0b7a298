/**
 * Goals as the API shows them: a stored goal row plus (for GetGoal, CancelGoal
 * and SubmitGoal) the state of each step.
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type Goal, GoalSchema, type StepState } from "../../gen/agentmesh/v1/executor_pb.js";
import type { GoalRecord } from "../../lib/store/records.js";
import { toErrorInfo, toStepStates } from "./domain/index.js";
import type { LoadedGoal } from "./goal-store.js";

export function goalMessage(goal: GoalRecord, steps: StepState[] = []): Goal {
  return create(GoalSchema, {
    goalId: goal.id,
    tenantId: goal.tenantId,
    kind: goal.kind,
    input: goal.input,
    idempotencyKey: goal.idempotencyKey ?? "",
    priority: goal.priority,
    status: GoalStatus[goal.status],
    planId: goal.planId ?? "",
    strategy: goal.strategy ?? "",
    parentGoalId: goal.parentGoalId ?? "",
    parentStepId: goal.parentStepId ?? "",
    createdAt: timestampFromDate(goal.createdAt),
    updatedAt: timestampFromDate(goal.updatedAt),
    labels: goal.labels,
    traceId: goal.traceId ?? "",
    steps,
    ...(goal.deadline ? { deadline: timestampFromDate(goal.deadline) } : {}),
    ...(goal.finishedAt ? { finishedAt: timestampFromDate(goal.finishedAt) } : {}),
    ...(goal.status === "SUCCEEDED" ? { output: fromJson(ValueSchema, goal.output) } : {}),
    ...(goal.error
      ? {
          error: toErrorInfo({
            code: goal.error.code,
            message: goal.error.message,
            retryable: goal.error.retryable ?? false,
            ...(goal.error.details ? { details: goal.error.details } : {}),
          }),
        }
      : {}),
  });
}

/** A loaded goal with its steps. */
export function goalWithSteps(loaded: LoadedGoal): Goal {
  return goalMessage(loaded.goal, toStepStates(loaded.state));
}
