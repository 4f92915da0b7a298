/**
 * Folds a goal's event stream (`WatchGoal`) into the `Goal` held in memory:
 * the state the dashboard renders and `agentmesh goal submit --watch` draws.
 * Browser-safe.
 *
 * @example
 * const goal = create(GoalSchema, { goalId });
 * for await (const { event } of mesh.executor.watchGoal({ goalId })) {
 *   if (event) applyGoalEvent(goal, event);
 * }
 */
import { create } from "@bufbuild/protobuf";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import {
  type Goal,
  type GoalEvent,
  type StepState,
  StepStateSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";

/** Applies one event; returns the step it changed, if it changed one. */
export function applyGoalEvent(goal: Goal, event: GoalEvent): StepState | undefined {
  const k = event.kind;
  const set = (id: string, status: StepStatus, attempt: number) => {
    const s = goal.steps.find((step) => step.stepId === id);
    if (!s) return undefined;
    s.status = status;
    if (attempt) s.attempts = attempt;
    return s;
  };
  switch (k.case) {
    case "planned":
      goal.status = GoalStatus.RUNNING;
      // The history is replayed from the start: a goal that already has its steps keeps them.
      if (goal.steps.length === 0) {
        goal.steps = (k.value.plan?.steps ?? []).map((s) =>
          create(StepStateSchema, {
            stepId: s.stepId,
            capability: s.capability,
            dependsOn: s.dependsOn,
            status: StepStatus.PENDING,
          }),
        );
      }
      return undefined;
    case "stepDispatched":
      return set(k.value.stepId, StepStatus.DISPATCHED, k.value.attempt);
    case "stepStarted":
      return set(k.value.stepId, StepStatus.RUNNING, k.value.attempt);
    case "stepSucceeded":
      return set(k.value.stepId, StepStatus.SUCCEEDED, k.value.attempt);
    case "stepFailed":
      return set(
        k.value.stepId,
        k.value.willRetry ? StepStatus.RETRY_WAIT : StepStatus.FAILED,
        k.value.attempt,
      );
    case "finished":
      goal.status = k.value.status;
      if (k.value.output) goal.output = k.value.output;
      if (k.value.error) goal.error = k.value.error;
      return undefined;
    default:
      return undefined;
  }
}
