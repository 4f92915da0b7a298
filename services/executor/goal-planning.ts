/**
 * How the executor plans a goal (ADR-017). A goal whose kind has a playbook
 * the tenant sees (or a `capability.<name>` kind) is planned in this process
 * with the planner's own code (`services/planner/goal-planner.ts`: the same
 * playbook catalog and its change channel, the same FindAgents check and its
 * cache, the same learning choice), so it costs no PlanGoal call. A kind
 * without a playbook goes to the planner service's PlanGoal, whose LLM
 * planner may propose one (or which answers NOT_FOUND), and so does every
 * goal when `remote` planning is asked for (`AGENTMESH_EXECUTOR_REMOTE_PLANNING`).
 *
 * The answers are the planner service's: the same plan, the same refusals
 * (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION naming the missing
 * capabilities); anything thrown that is not a MeshError becomes INTERNAL
 * with the generic message, as it would crossing the RPC.
 *
 * @example
 * const planning = goalPlanning({ planner, remote: clients.planner, log, timeoutMs: 10_000 });
 * const plan = await planning({ goalId, tenantId, kind: "echo", input, strategy: "" });
 */
import type { JsonObject } from "@bufbuild/protobuf";
import type { Plan, PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, isMeshError, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import type { Client } from "../../lib/rpc/client.js";
import type { GoalPlanner } from "../planner/goal-planner.js";

/** A goal to plan, as the engine has it. */
export interface GoalPlanRequest {
  goalId: string;
  tenantId: string;
  kind: string;
  input: JsonObject;
  /** Requested strategy; empty lets the chooser pick. */
  strategy: string;
}

/** Plans a goal; throws the planner's refusal as a MeshError. */
export type PlanGoal = (goal: GoalPlanRequest) => Promise<Plan>;

export interface GoalPlanningOptions {
  /** The in-process planner; none: every goal goes to `remote`. */
  planner?: GoalPlanner | undefined;
  /** The planner service (kinds without a playbook, and everything without `planner`). */
  remote: Client<typeof PlannerService>;
  log: Logger;
  /** Deadline of the PlanGoal call. */
  timeoutMs: number;
}

export function goalPlanning(options: GoalPlanningOptions): PlanGoal {
  const { planner, remote, log } = options;
  const planRemotely: PlanGoal = async (goal) => {
    const res = await remote.planGoal(
      {
        goalId: goal.goalId,
        tenantId: goal.tenantId,
        goalKind: goal.kind,
        input: goal.input,
        strategy: goal.strategy,
      },
      { timeoutMs: options.timeoutMs },
    );
    return nonEmpty(res.plan);
  };
  if (planner === undefined) return planRemotely;
  return async (goal) => {
    try {
      const request = {
        goalId: goal.goalId,
        tenantId: goal.tenantId,
        goalKind: goal.kind,
        input: goal.input,
        strategy: goal.strategy,
      };
      const playbook = await planner.playbookFor(request);
      if (playbook === undefined) return await planRemotely(goal);
      const { result } = await planner.plan(request, playbook);
      log.info(
        {
          goalId: goal.goalId,
          kind: goal.kind,
          strategy: result.plan.strategy,
          selector: result.selector,
        },
        "goal planned",
      );
      return nonEmpty(result.plan);
    } catch (err) {
      // What a PlanGoal call would have answered: a MeshError as thrown, anything else generic.
      if (isMeshError(err)) throw err;
      log.error({ err, goalId: goal.goalId }, "planning failed");
      throw new MeshError(Code.Internal, "internal error", { cause: err });
    }
  };
}

function nonEmpty(plan: Plan | undefined): Plan {
  if (plan === undefined || plan.steps.length === 0) {
    throw new MeshError(Code.FailedPrecondition, "the planner returned an empty plan");
  }
  return plan;
}
