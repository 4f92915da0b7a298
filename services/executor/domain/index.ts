/**
 * The executor's domain: the goal state machine as a pure reducer over plain
 * JSON state, arbitration of replicas, retry policy and the learning outcome.
 * The executor service persists `state` and carries out `commands`.
 *
 * @example
 * let t = initGoal({ goalId, tenantId, kind, input, createdAtMs: now, deadlineMs });
 * t = reduceGoal(t.state, { type: "planned", plan, at: Date.now() });
 * // persist t.state with t.commands, then run the commands
 */

export type { Arbitration, ReplicaAnswer } from "./arbitrate.js";
export { arbitrate, canonicalJson } from "./arbitrate.js";
export type { GoalCommand, GoalInput, NewGoal, ReduceOptions, Transition } from "./goal-reducer.js";
export {
  attemptDeadlineMs,
  attemptRateLimited,
  attemptTimeoutAtMs,
  childKey,
  defaultStepTimeoutMs,
  initGoal,
  maxUnchargedAttempts,
  notTakenCode,
  rateLimitedCode,
  recoverGoal,
  reduceGoal,
  stepSpecOf,
  unchargedAttempts,
} from "./goal-reducer.js";
export type {
  AttemptRecord,
  ErrorData,
  GoalState,
  PlanInfo,
  StepRuntime,
  StepSpec,
} from "./goal-state.js";
export {
  attemptIdOf,
  fromErrorInfo,
  isStepTerminal,
  isTerminal,
  toErrorInfo,
  toStepStates,
} from "./goal-state.js";
export { goalOutcome } from "./outcome.js";
export type { RetrySpec } from "./retry.js";
export { backoffMs, retryDefaults, retrySpec, shouldRetry } from "./retry.js";
