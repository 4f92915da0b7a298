/**
 * A goal's result as plain values: its output (a protobuf `Value` on the wire)
 * as JSON, and whether a status is final. Browser-safe.
 *
 * @example
 * const { goal } = await mesh.executor.getGoal({ goalId });
 * if (goal && isFinished(goal.status)) console.log(goalStatusName(goal.status), outputJson(goal.output));
 */
import { type JsonValue, toJson } from "@bufbuild/protobuf";
import { type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";

/** A protobuf `Value` (a goal's or step's output) as plain JSON; undefined when absent. */
export function outputJson(value: Value | undefined): JsonValue | undefined {
  return value === undefined ? undefined : toJson(ValueSchema, value);
}

/** True for SUCCEEDED, FAILED and CANCELLED: the goal will not change again. */
export function isFinished(status: GoalStatus): boolean {
  return (
    status === GoalStatus.SUCCEEDED ||
    status === GoalStatus.FAILED ||
    status === GoalStatus.CANCELLED
  );
}

/** A status as a lower-case word ("succeeded", "waiting_for_agents"...), for printing. */
export function goalStatusName(status: GoalStatus): string {
  return (GoalStatus[status] ?? String(status)).toLowerCase();
}
