/**
 * The executor's state of one goal, as plain JSON: what the store persists
 * (one row per step with its attempts, or one document) and what the reducer
 * rebuilds everything from after a crash. Nothing here refers to a socket,
 * a timer or a clock.
 *
 * @example
 * const { state, commands } = initGoal({ goalId, tenantId, kind, input, createdAtMs, deadlineMs });
 * const json = JSON.stringify(state); // persist; JSON.parse(json) resumes it
 */
import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type ErrorInfo,
  ErrorInfoSchema,
  GoalStatus,
  StepStatus,
} from "../../../gen/agentmesh/v1/common_pb.js";
import { type StepState, StepStateSchema } from "../../../gen/agentmesh/v1/executor_pb.js";
import type { RetrySpec } from "./retry.js";

/** A failure in plain form; maps 1:1 to `ErrorInfo`. */
export interface ErrorData {
  code: string;
  message: string;
  retryable: boolean;
  details?: JsonObject;
}

/** A plan step with defaults applied (durations in ms, retry filled). */
export interface StepSpec {
  stepId: string;
  name: string;
  /** Empty for sub-goal steps. */
  capability: string;
  /** Input with `${steps...}` templates still to resolve at dispatch. */
  input: JsonObject;
  dependsOn: string[];
  replicas: number;
  timeoutMs: number;
  retry: RetrySpec;
  subGoal?: { kind: string; input: JsonObject };
  /** Semver range the serving agent's version must satisfy (ADR-015); absent for any. */
  versionRange?: string;
}

/** One job sent to one agent: an attempt of a step, for one replica. */
export interface AttemptRecord {
  /** `${goalId}:${stepId}:${attempt}:${replica}`; the job's dedup id. */
  attemptId: string;
  attempt: number;
  replica: number;
  status: "dispatched" | "running" | "succeeded" | "failed" | "cancelled";
  agentId: string;
  dispatchedAtMs: number;
  /** When the attempt times out. */
  timeoutAtMs: number;
  startedAtMs?: number;
  finishedAtMs?: number;
  output?: JsonValue;
  error?: ErrorData;
  cost?: number;
}

/** One step's progress. */
export interface StepRuntime {
  spec: StepSpec;
  status: StepStatus;
  /** Number of the latest attempt started; 0 before the first. */
  attempt: number;
  /** Every attempt record of every attempt, oldest first. */
  attempts: AttemptRecord[];
  /** When the next attempt is due while in RETRY_WAIT. */
  retryAtMs?: number;
  output?: JsonValue;
  error?: ErrorData;
  /** Agents whose output was taken. */
  agentIds: string[];
  disagreement?: boolean;
  startedAtMs?: number;
  finishedAtMs?: number;
  /** Child goal of a sub-goal step, once the adapter started it. */
  childGoalId?: string;
}

/** The plan facts the executor keeps. */
export interface PlanInfo {
  planId: string;
  strategy: string;
  outputStep: string;
  collaborative: boolean;
  parametersVersion: string;
}

/** Everything the executor knows about a goal. Plain JSON. */
export interface GoalState {
  goalId: string;
  tenantId: string;
  kind: string;
  input: JsonObject;
  status: GoalStatus;
  createdAtMs: number;
  deadlineMs: number;
  finishedAtMs?: number;
  plan?: PlanInfo;
  /** Step ids in plan order. */
  stepOrder: string[];
  steps: Record<string, StepRuntime>;
  output?: JsonValue;
  error?: ErrorData;
  /** Sequence of the last event emitted; events are numbered from 1 without gaps. */
  sequence: number;
  /** Parent link for sub-goals. */
  parentGoalId?: string;
  parentStepId?: string;
  /** Who the goal acts for (`GoalRecord.submittedBy`); the policy sees it at dispatch. */
  submittedBy?: string;
  /** The roles of that principal at submission (`GoalRecord.submitterRoles`): the policy derives scopes from them. */
  submitterRoles?: string[];
  /** W3C traceparent the goal's jobs continue (its submission's span); absent: no trace. */
  traceparent?: string;
}

/** Whether a goal status is final. */
export function isTerminal(status: GoalStatus): boolean {
  return (
    status === GoalStatus.SUCCEEDED ||
    status === GoalStatus.FAILED ||
    status === GoalStatus.CANCELLED
  );
}

/** Whether a step status is final. */
export function isStepTerminal(status: StepStatus): boolean {
  return (
    status === StepStatus.SUCCEEDED ||
    status === StepStatus.FAILED ||
    status === StepStatus.CANCELLED
  );
}

/** The attempt id of one replica of one attempt; deterministic so a re-dispatch dedups. */
export function attemptIdOf(goalId: string, stepId: string, attempt: number, replica: number) {
  return `${goalId}:${stepId}:${attempt}:${replica}`;
}

/** `ErrorData` → `ErrorInfo`. */
export function toErrorInfo(error: ErrorData): ErrorInfo {
  return create(ErrorInfoSchema, {
    code: error.code,
    message: error.message,
    retryable: error.retryable,
    details: error.details,
  });
}

/** `ErrorInfo` → `ErrorData`; a missing error becomes UNKNOWN. */
export function fromErrorInfo(
  error: ErrorInfo | undefined,
  fallback = "no error given",
): ErrorData {
  if (error === undefined) return { code: "UNKNOWN", message: fallback, retryable: true };
  return {
    code: error.code || "UNKNOWN",
    message: error.message,
    retryable: error.retryable,
    ...(error.details !== undefined ? { details: error.details } : {}),
  };
}

/** The steps as `StepState` messages for GetGoal and WatchGoal. */
export function toStepStates(state: GoalState): StepState[] {
  return state.stepOrder.map((id) => {
    const s = state.steps[id]!;
    const agents = new Set(s.agentIds);
    for (const a of s.attempts) if (a.agentId !== "") agents.add(a.agentId);
    return create(StepStateSchema, {
      stepId: id,
      capability: s.spec.capability,
      status: s.status,
      attempts: s.attempt,
      output: s.output === undefined ? undefined : fromJson(ValueSchema, s.output),
      error: s.error === undefined ? undefined : toErrorInfo(s.error),
      startedAt: s.startedAtMs === undefined ? undefined : timestampFromMs(s.startedAtMs),
      finishedAt: s.finishedAtMs === undefined ? undefined : timestampFromMs(s.finishedAtMs),
      agentIds: [...agents],
      dependsOn: s.spec.dependsOn,
      childGoalId: s.childGoalId ?? "",
    });
  });
}
