/**
 * The planner's decision, free of I/O: validate the goal's input, find which
 * strategies every needed capability is live for, let the chooser pick among
 * those, instantiate the plan, and explain the choice. The RPC handler looks
 * up the playbook, the live capabilities and the candidate agents, and
 * passes them in.
 *
 * @example
 * const { plan, candidates, selector } = await planGoal(
 *   { goalId, tenantId, goalKind: "summarize", input: { text } },
 *   { playbook, liveCapabilities, chooser, newPlanId: randomUUID, now: Date.now },
 * );
 * const explanation = explainPlan({ plan, candidates, selector }, (c) => agentsByCapability.get(c) ?? []);
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import {
  type ExplainPlanResponse,
  ExplainPlanResponseSchema,
  type Plan,
  type Playbook,
  StepExplanationSchema,
  type StrategyCandidate,
  StrategyCandidateSchema,
} from "../../../gen/agentmesh/v1/planner_pb.js";
import type { Agent } from "../../../gen/agentmesh/v1/registry_pb.js";
import { decisionContext } from "../../../lib/plan/decision-context.js";
import { validateGoalInput } from "./input-schema.js";
import {
  findStrategy,
  instantiatePlan,
  missingCapabilities,
  missingCapabilitiesError,
} from "./plan.js";
import type { StrategyChooser } from "./strategy-chooser.js";

/** What to plan. */
export interface PlanRequest {
  goalId: string;
  tenantId: string;
  goalKind: string;
  input?: JsonObject | undefined;
  /** Strategy forced by the caller; empty or undefined lets the chooser pick. */
  strategy?: string | undefined;
}

/** What planning needs from the outside world, looked up by the adapter. */
export interface PlanningInputs {
  /** The playbook of the goal kind visible to the tenant. */
  playbook: Playbook;
  /** Capabilities offered by at least one live agent. */
  liveCapabilities: ReadonlySet<string>;
  chooser: StrategyChooser;
  newPlanId: () => string;
  /** Epoch milliseconds. */
  now: () => number;
}

/** A plan and how it was chosen. */
export interface PlanningResult {
  plan: Plan;
  /** Every strategy of the playbook with its score and missing capabilities. */
  candidates: StrategyCandidate[];
  /** Who chose: the chooser's selector, "requested", or "only". */
  selector: string;
}

/**
 * Plans a goal. Throws INVALID_ARGUMENT when the input does not match the
 * playbook's schema, NOT_FOUND for a requested strategy the playbook lacks,
 * FAILED_PRECONDITION naming the missing capabilities when no strategy (or
 * not the requested one) can run on the live agents.
 */
export async function planGoal(
  request: PlanRequest,
  inputs: PlanningInputs,
): Promise<PlanningResult> {
  const { playbook } = inputs;
  validateGoalInput(playbook, request.input);
  const goal = { goalId: request.goalId, tenantId: request.tenantId, input: request.input };

  // Missing capabilities depend on the strategy's steps, not on the input.
  const candidates = playbook.strategies.map((s) =>
    create(StrategyCandidateSchema, {
      strategy: s.name,
      missingCapabilities: missingCapabilities(s, inputs.liveCapabilities),
    }),
  );
  const make = (strategy: string, selector: string, rationale: string, parametersVersion = "") => ({
    plan: instantiatePlan({
      playbook,
      strategy,
      goal,
      planId: inputs.newPlanId(),
      now: inputs.now(),
      rationale,
      parametersVersion,
    }),
    candidates,
    selector,
  });

  if (request.strategy) {
    findStrategy(playbook, request.strategy);
    const missing = candidates.find((c) => c.strategy === request.strategy)!.missingCapabilities;
    if (missing.length > 0)
      throw missingCapabilitiesError(missing, `strategy "${request.strategy}"`);
    for (const c of candidates) c.score = c.strategy === request.strategy ? 1 : 0;
    return make(request.strategy, "requested", `strategy "${request.strategy}" was requested`);
  }

  const eligible = candidates.filter((c) => c.missingCapabilities.length === 0);
  if (eligible.length === 0) {
    // Name what the default strategy lacks; details list every strategy's gaps.
    const err = missingCapabilitiesError(candidates[0]?.missingCapabilities ?? [], "goal kind");
    err.details.strategies = candidates.map((c) => ({
      strategy: c.strategy,
      missingCapabilities: c.missingCapabilities,
    }));
    throw err;
  }
  if (eligible.length === 1) {
    const only = eligible[0]!;
    only.score = 1;
    return make(
      only.strategy,
      "only",
      `"${only.strategy}" is the only strategy the live agents can run`,
    );
  }
  const choice = await inputs.chooser.choose({
    context: decisionContext(request.tenantId, request.goalKind, request.input),
    candidates: eligible.map((c) => c.strategy),
  });
  for (const c of candidates) c.score = choice.scores[c.strategy] ?? 0;
  return make(choice.strategy, choice.selector, choice.reason, choice.parametersVersion);
}

/**
 * The `ExplainPlan` answer: the plan, every strategy considered, the selector,
 * and for each capability step the live agents that could serve it (as given,
 * most reliable first).
 */
export function explainPlan(
  result: PlanningResult,
  agentsFor: (capability: string) => readonly Agent[],
): ExplainPlanResponse {
  return create(ExplainPlanResponseSchema, {
    plan: result.plan,
    candidates: result.candidates,
    selector: result.selector,
    steps: result.plan.steps.map((step) =>
      create(StepExplanationSchema, {
        stepId: step.stepId,
        capability: step.capability,
        candidates: step.capability === "" ? [] : [...agentsFor(step.capability)],
      }),
    ),
  });
}
