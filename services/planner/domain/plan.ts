/**
 * Turns one strategy of a playbook into a plan for one goal: ids assigned,
 * `${input...}` templates resolved (step-output templates are left for the
 * executor), replicas normalised, the output step made explicit.
 *
 * @example
 * const plan = instantiatePlan({ playbook, strategy: "solo", goal, planId, now: Date.now() });
 * requireCapabilities(plan, new Set(["text.summarize"])); // or FAILED_PRECONDITION naming the missing ones
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type Plan,
  PlanSchema,
  type Playbook,
  type Step,
  StepSchema,
  type Strategy,
} from "../../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { resolveTemplates } from "../../../lib/plan/template.js";
import { cloneMessage } from "../../../lib/proto/clone-message.js";

/** The goal a plan is made for. */
export interface GoalRef {
  goalId: string;
  tenantId: string;
  input?: JsonObject | undefined;
}

export interface InstantiateOptions {
  playbook: Playbook;
  /** The strategy, or its name (NOT_FOUND if the playbook has none of that name). */
  strategy: Strategy | string;
  goal: GoalRef;
  planId: string;
  /** Plan creation time, epoch milliseconds. */
  now: number;
  /** Why this strategy; default empty. */
  rationale?: string;
  /** Learning parameter version that chose it; default empty. */
  parametersVersion?: string;
}

/** Instantiates a plan. Throws INVALID_ARGUMENT if an input template cannot be filled. */
export function instantiatePlan(options: InstantiateOptions): Plan {
  const strategy =
    typeof options.strategy === "string"
      ? findStrategy(options.playbook, options.strategy)
      : options.strategy;
  const context = { input: options.goal.input ?? {} };
  const steps = strategy.steps.map((template): Step => {
    const step = cloneMessage(StepSchema, template);
    step.replicas = Math.max(1, step.replicas);
    if (step.input !== undefined) {
      step.input = resolveTemplates(step.input, context, {
        keepUnresolvedSteps: true,
      }) as JsonObject;
    }
    if (step.subGoal?.input !== undefined) {
      step.subGoal.input = resolveTemplates(step.subGoal.input, context, {
        keepUnresolvedSteps: true,
      }) as JsonObject;
    }
    return step;
  });
  return create(PlanSchema, {
    planId: options.planId,
    goalId: options.goal.goalId,
    tenantId: options.goal.tenantId,
    goalKind: options.playbook.goalKind,
    strategy: strategy.name,
    steps,
    outputStep: strategy.outputStep || (steps[steps.length - 1]?.stepId ?? ""),
    parametersVersion: options.parametersVersion ?? "",
    rationale: options.rationale ?? "",
    createdAt: timestampFromMs(options.now),
    collaborative: strategy.collaborative,
  });
}

/** The strategy of that name; NOT_FOUND listing the ones that exist. */
export function findStrategy(playbook: Playbook, name: string): Strategy {
  const strategy = playbook.strategies.find((s) => s.name === name);
  if (strategy === undefined) {
    throw new MeshError(
      Code.NotFound,
      `goal kind "${playbook.goalKind}" has no strategy "${name}" (it has: ${playbook.strategies
        .map((s) => s.name)
        .join(", ")})`,
    );
  }
  return strategy;
}

/** Capabilities the steps need, sorted, each once (sub-goal steps need none themselves). */
export function planCapabilities(plan: Pick<Plan, "steps">): string[] {
  const set = new Set<string>();
  for (const step of plan.steps) if (step.capability !== "") set.add(step.capability);
  return [...set].sort();
}

/** Capabilities of the plan that no live agent offers, sorted. */
export function missingCapabilities(
  plan: Pick<Plan, "steps">,
  live: ReadonlySet<string>,
): string[] {
  return planCapabilities(plan).filter((c) => !live.has(c));
}

/**
 * Throws FAILED_PRECONDITION naming the capabilities no live agent offers
 * (also in `details.missingCapabilities`).
 */
export function requireCapabilities(plan: Pick<Plan, "steps">, live: ReadonlySet<string>): void {
  const missing = missingCapabilities(plan, live);
  if (missing.length > 0) throw missingCapabilitiesError(missing);
}

/** The FAILED_PRECONDITION error for missing capabilities. */
export function missingCapabilitiesError(missing: readonly string[], what = "plan"): MeshError {
  return new MeshError(
    Code.FailedPrecondition,
    `no live agent offers ${missing.length === 1 ? "capability" : "capabilities"} ${missing
      .map((c) => `"${c}"`)
      .join(", ")} needed by the ${what}`,
    { details: { missingCapabilities: [...missing] }, retryable: false },
  );
}
