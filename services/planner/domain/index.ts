/**
 * The planner's domain: playbook files and validation, plan instantiation,
 * strategy choice and explanation. No I/O beyond reading playbook files;
 * the RPC handlers adapt requests onto these functions.
 *
 * @example
 * const playbooks = await loadPlaybookDir(builtinPlaybookDir);
 * const result = await planGoal(request, { playbook, liveCapabilities, chooser, newPlanId, now });
 */

export { decisionContext, sizeClass } from "../../../lib/plan/decision-context.js";
export type { DagNode } from "./dag.js";
export { findCycle, topologicalOrder, transitiveDependencies } from "./dag.js";
export { formatDuration, parseDuration } from "./duration.js";
export type { SchemaError } from "./input-schema.js";
export { compileSchema, schemaErrors, schemaProblem, validateGoalInput } from "./input-schema.js";
export type { ChatMessage, LlmPlanner, LlmPlannerOptions, LlmPlanRequest } from "./llm-planner.js";
export {
  llmPlanMessages,
  parseLlmStrategy,
  validateLlmPlannerOptions,
} from "./llm-planner.js";
export { builtinPlaybookDir, loadPlaybookDir } from "./load-playbooks.js";
export type { GoalRef, InstantiateOptions } from "./plan.js";
export {
  findStrategy,
  instantiatePlan,
  missingCapabilities,
  missingCapabilitiesError,
  planCapabilities,
  requireCapabilities,
} from "./plan.js";
export type { PlanningInputs, PlanningResult, PlanRequest } from "./plan-goal.js";
export { explainPlan, planGoal } from "./plan-goal.js";
export { maxPlaybookBytes, parsePlaybookYaml, readPlaybook } from "./playbook-file.js";
export type {
  ChooseInput,
  StrategyChoice,
  StrategyChooser,
  WithFallbackOptions,
} from "./strategy-chooser.js";
export { firstStrategyChooser, withFallback } from "./strategy-chooser.js";
export {
  assertValidPlaybook,
  invalidPlaybook,
  playbookLimits,
  validatePlaybook,
  validateStrategy,
} from "./validate-playbook.js";
export type { FieldPath, Violation } from "./violation.js";
export { formatPath, violationsError } from "./violation.js";
