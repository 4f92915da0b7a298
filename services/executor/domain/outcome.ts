/**
 * The learning outcome of a finished goal: strategy, success, latency, cost
 * and what each agent did, read from the goal's state.
 *
 * @example
 * const outcome = goalOutcome(state, decisionContext); // publish on agentmesh.learning.outcomes
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type DecisionContext, GoalStatus } from "../../../gen/agentmesh/v1/common_pb.js";
import {
  AgentResultSchema,
  type Outcome,
  OutcomeSchema,
} from "../../../gen/agentmesh/v1/jobs_pb.js";
import type { GoalState } from "./goal-state.js";

/** The outcome of a finished goal; undefined while it runs. */
export function goalOutcome(state: GoalState, context: DecisionContext): Outcome | undefined {
  if (state.finishedAtMs === undefined) return undefined;
  let cost = 0;
  const agentResults = [];
  for (const id of state.stepOrder) {
    const step = state.steps[id]!;
    for (const a of step.attempts) {
      cost += a.cost ?? 0;
      // Only attempts an agent actually answered say something about that agent.
      if (a.agentId === "" || (a.status !== "succeeded" && a.status !== "failed")) continue;
      agentResults.push(
        create(AgentResultSchema, {
          agentId: a.agentId,
          capability: step.spec.capability,
          success: a.status === "succeeded",
          latency: durationFromMs(
            Math.max(0, (a.finishedAtMs ?? a.dispatchedAtMs) - a.dispatchedAtMs),
          ),
        }),
      );
    }
  }
  return create(OutcomeSchema, {
    goalId: state.goalId,
    context,
    strategy: state.plan?.strategy ?? "",
    parametersVersion: state.plan?.parametersVersion ?? "",
    success: state.status === GoalStatus.SUCCEEDED,
    latency: durationFromMs(Math.max(0, state.finishedAtMs - state.createdAtMs)),
    cost,
    agentResults,
    finishedAt: timestampFromMs(state.finishedAtMs),
    collaborative: state.plan?.collaborative ?? false,
  });
}
