/**
 * The goal state machine as a pure decider: `(state, input) → { state, commands }`.
 * The executor service persists the new state and the commands together, then
 * carries the commands out (publish jobs, arm timers, emit events). Inputs that
 * change nothing — a duplicate result, a late timer — return the same state
 * object and no commands, so redelivery is harmless.
 *
 * @example
 * let { state, commands } = initGoal({ goalId, tenantId, kind, input, createdAtMs: now, deadlineMs });
 * ({ state, commands } = reduceGoal(state, { type: "planned", plan, at: Date.now() }));
 * for (const c of commands) if (c.type === "dispatchJob") await bus.publish(c.job);
 */
import {
  create,
  fromJson,
  type JsonObject,
  type JsonValue,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import {
  durationFromMs,
  durationMs,
  timestampFromMs,
  timestampMs,
  ValueSchema,
} from "@bufbuild/protobuf/wkt";
import { GoalStatus, StepStatus } from "../../../gen/agentmesh/v1/common_pb.js";
import { type GoalEvent, GoalEventSchema } from "../../../gen/agentmesh/v1/executor_pb.js";
import {
  type CancelSignal,
  CancelSignalSchema,
  type StepJob,
  StepJobSchema,
  type StepResult,
  StepResultStatus,
} from "../../../gen/agentmesh/v1/jobs_pb.js";
import type { Plan } from "../../../gen/agentmesh/v1/planner_pb.js";
import { agentLostCode, attemptFenceGraceMs } from "../../../lib/bus/attempt-fence.js";
import { resolveTemplates } from "../../../lib/plan/template.js";
import { encodeJson } from "../../../lib/proto/json-encoder.js";
import { arbitrate } from "./arbitrate.js";
import {
  type AttemptRecord,
  attemptIdOf,
  type ErrorData,
  fromErrorInfo,
  type GoalState,
  isStepTerminal,
  isTerminal,
  type StepRuntime,
  type StepSpec,
  toErrorInfo,
} from "./goal-state.js";
import { backoffMs, retrySpec, shouldRetry } from "./retry.js";

/** Time limit of one attempt when the step sets none. */
export const defaultStepTimeoutMs = 60_000;

/** The deadline an attempt's job carries: no agent runs it at or after this. */
export function attemptDeadlineMs(dispatchedAtMs: number, timeoutMs: number): number {
  return dispatchedAtMs + timeoutMs;
}

/**
 * When the executor gives up on an attempt no agent answered for (TIMEOUT): its
 * deadline plus a grace for clock skew, when no agent can still be running it.
 * The step's next attempt is dispatched only after this (or after the agent
 * reported the attempt's end).
 */
export function attemptTimeoutAtMs(dispatchedAtMs: number, timeoutMs: number): number {
  return attemptDeadlineMs(dispatchedAtMs, timeoutMs) + attemptFenceGraceMs;
}

/** What happened to a goal. `at` is the time it happened, epoch milliseconds. */
export type GoalInput =
  | { type: "planned"; plan: Plan; at: number }
  | { type: "planFailed"; error: ErrorData; at: number }
  | { type: "result"; result: StepResult; at: number }
  /**
   * `untaken`: no agent took the job because none offering its capability was
   * live (the executor waited for one): the attempt is given up without being
   * charged to the step's retry policy (see `unchargedAttempts`).
   */
  | { type: "attemptTimedOut"; attemptId: string; at: number; untaken?: boolean }
  | { type: "retryDue"; stepId: string; attempt: number; at: number }
  | { type: "cancelRequested"; reason: string; at: number }
  | { type: "deadlinePassed"; at: number }
  | { type: "childGoalStarted"; stepId: string; attempt: number; childGoalId: string; at: number }
  | {
      type: "childGoalFinished";
      stepId: string;
      attempt: number;
      /** The child: recorded on the step here if its start was not yet (the child was quicker). */
      childGoalId?: string;
      status: GoalStatus;
      output?: JsonValue;
      error?: ErrorData;
      at: number;
    };

/** What the executor must do. Carried out after the new state is persisted. */
export type GoalCommand =
  /** Publish to `agentmesh.jobs.<capability>` with `Nats-Msg-Id = job.attemptId`. */
  | { type: "dispatchJob"; job: StepJob }
  /** Feed `attemptTimedOut` at `at` unless the attempt finished. */
  | { type: "scheduleTimeout"; attemptId: string; at: number }
  /** Feed `retryDue(stepId, attempt)` at `at`. */
  | { type: "scheduleRetry"; stepId: string; attempt: number; at: number }
  /** Feed `deadlinePassed` at `at`. */
  | { type: "scheduleDeadline"; at: number }
  /** Publish on `agentmesh.control.cancel.<goal>`. */
  | { type: "publishCancel"; signal: CancelSignal }
  /** Submit a child goal (idempotent by `idempotencyKey`), then feed `childGoalStarted`. */
  | {
      type: "startChildGoal";
      stepId: string;
      attempt: number;
      idempotencyKey: string;
      kind: string;
      input: JsonObject;
      deadlineMs: number;
    }
  /** Cancel a running child goal (by id once known, else by the key it was started with). */
  | { type: "cancelChildGoal"; childGoalId: string; idempotencyKey: string; reason: string }
  /** The goal is over: record it, send the outcome to learning, notify a parent. */
  | { type: "finishGoal"; status: GoalStatus; output?: JsonValue; error?: ErrorData }
  /** Persist and publish one goal event (sequence already assigned). */
  | { type: "emitEvent"; event: GoalEvent };

export interface Transition {
  state: GoalState;
  commands: GoalCommand[];
}

/** Lookups the reducer may use; both must be pure for a given input. */
export interface ReduceOptions {
  /** Reliability of an agent for a capability in [0, 1]; default 0.5 for all. */
  reliability?: (agentId: string, capability: string) => number;
}

/** A goal as accepted by SubmitGoal. */
export interface NewGoal {
  goalId: string;
  tenantId: string;
  kind: string;
  input?: JsonObject | undefined;
  createdAtMs: number;
  deadlineMs: number;
  parentGoalId?: string;
  parentStepId?: string;
  submittedBy?: string;
  submitterRoles?: string[];
  traceparent?: string;
}

/** The state of a freshly accepted goal, its `submitted` event and its deadline timer. */
export function initGoal(goal: NewGoal): Transition {
  const state: GoalState = {
    goalId: goal.goalId,
    tenantId: goal.tenantId,
    kind: goal.kind,
    input: goal.input ?? {},
    status: GoalStatus.PENDING,
    createdAtMs: goal.createdAtMs,
    deadlineMs: goal.deadlineMs,
    stepOrder: [],
    steps: {},
    sequence: 0,
    ...(goal.parentGoalId ? { parentGoalId: goal.parentGoalId } : {}),
    ...(goal.parentStepId ? { parentStepId: goal.parentStepId } : {}),
    ...(goal.submittedBy ? { submittedBy: goal.submittedBy } : {}),
    ...(goal.submitterRoles?.length ? { submitterRoles: goal.submitterRoles } : {}),
    ...(goal.traceparent ? { traceparent: goal.traceparent } : {}),
  };
  const tx = new Tx(state, {});
  tx.emit(goal.createdAtMs, { case: "submitted", value: { kind: goal.kind } });
  tx.commands.push({ type: "scheduleDeadline", at: goal.deadlineMs });
  return tx.done();
}

/** Error code of an attempt given up because no agent offering its capability was live to take it. */
export const notTakenCode = "NOT_TAKEN";

/**
 * Most attempts per step that no agent took and that are not charged to its
 * retry policy: an agent outage costs a step none of its attempts, yet a job
 * nobody ever takes still ends.
 */
export const maxUnchargedAttempts = 3;

/**
 * Error code of an attempt held back at dispatch because its capability was
 * over its rate limit: never published, not charged to the step's retries,
 * and retried exactly at the turn the executor reserved for it
 * (`details.notBeforeMs`), when it is published without asking the limit again.
 */
export const rateLimitedCode = "RATE_LIMITED";

/** Whether every record of an attempt ended with `code`. */
function attemptEndedWith(step: StepRuntime, attempt: number, code: string): boolean {
  const records = step.attempts.filter((a) => a.attempt === attempt);
  return records.length > 0 && records.every((a) => a.error?.code === code);
}

/** Whether the step's attempt `attempt` was held back by a rate limit (so its successor has its turn). */
export function attemptRateLimited(step: StepRuntime, attempt: number): boolean {
  return attempt >= 1 && attemptEndedWith(step, attempt, rateLimitedCode);
}

/**
 * Of a step's attempts, those not charged to its retry policy: every replica
 * given up untaken (`notTakenCode`, capped) and those held back by a rate limit.
 */
export function unchargedAttempts(step: StepRuntime): number {
  let untaken = 0;
  let limited = 0;
  for (let attempt = 1; attempt <= step.attempt; attempt++) {
    if (attemptEndedWith(step, attempt, notTakenCode)) untaken++;
    else if (attemptEndedWith(step, attempt, rateLimitedCode)) limited++;
  }
  return Math.min(untaken, maxUnchargedAttempts) + limited;
}

/** Applies one input. Returns the same state object (and no commands) when nothing changes. */
export function reduceGoal(
  state: GoalState,
  input: GoalInput,
  options: ReduceOptions = {},
): Transition {
  if (isTerminal(state.status)) return { state, commands: [] };
  const tx = new Tx(state, options);
  switch (input.type) {
    case "planned":
      tx.planned(input.plan, input.at);
      break;
    case "planFailed":
      if (state.plan === undefined) tx.finish(input.at, GoalStatus.FAILED, undefined, input.error);
      break;
    case "result":
      tx.result(input.result, input.at);
      break;
    case "attemptTimedOut":
      tx.timedOut(input.attemptId, input.at, input.untaken === true);
      break;
    case "retryDue":
      tx.retryDue(input.stepId, input.attempt, input.at);
      break;
    case "cancelRequested":
      tx.stopAll(input.at, GoalStatus.CANCELLED, {
        code: "CANCELLED",
        message: input.reason || "cancelled by the client",
        retryable: false,
      });
      break;
    case "deadlinePassed":
      if (input.at >= state.deadlineMs) {
        tx.stopAll(input.at, GoalStatus.FAILED, {
          code: "DEADLINE_EXCEEDED",
          message: "the goal did not finish before its deadline",
          retryable: false,
        });
      }
      break;
    case "childGoalStarted":
      tx.childStarted(input.stepId, input.attempt, input.childGoalId);
      break;
    case "childGoalFinished":
      tx.childFinished(input);
      break;
  }
  return tx.done();
}

/**
 * Commands that re-arm a goal loaded after a crash: re-publish in-flight jobs
 * under their original attempt ids (deduplicated by the bus and by agents),
 * restart in-flight child goals (idempotent by key), and re-arm every timer.
 * Completed steps are not touched.
 */
export function recoverGoal(state: GoalState): GoalCommand[] {
  if (isTerminal(state.status)) return [];
  const tx = new Tx(state, {});
  tx.commands.push({ type: "scheduleDeadline", at: state.deadlineMs });
  for (const id of state.stepOrder) {
    const step = state.steps[id]!;
    if (step.status === StepStatus.RETRY_WAIT && step.retryAtMs !== undefined) {
      tx.commands.push({
        type: "scheduleRetry",
        stepId: id,
        attempt: step.attempt + 1,
        at: step.retryAtMs,
      });
    }
    if (isStepTerminal(step.status) || step.status === StepStatus.PENDING) continue;
    if (step.spec.subGoal !== undefined) {
      if (step.status !== StepStatus.RETRY_WAIT)
        tx.startChild(step, step.attempt, state.deadlineMs);
      continue;
    }
    const input = tx.stepInput(step);
    for (const record of step.attempts) {
      if (record.attempt !== step.attempt) continue;
      if (record.status !== "dispatched" && record.status !== "running") continue;
      if (input !== undefined) {
        tx.commands.push({
          type: "dispatchJob",
          job: tx.job(step, record, input, record.dispatchedAtMs),
        });
      }
      tx.commands.push({
        type: "scheduleTimeout",
        attemptId: record.attemptId,
        at: record.timeoutAtMs,
      });
    }
  }
  return tx.commands;
}

/** The plan step → executor spec mapping, with defaults applied. */
export function stepSpecOf(step: Plan["steps"][number]): StepSpec {
  const subGoal = step.subGoal;
  return {
    stepId: step.stepId,
    name: step.name,
    capability: step.capability,
    input: step.input ?? {},
    dependsOn: [...step.dependsOn],
    replicas: Math.max(1, step.replicas),
    timeoutMs: step.timeout
      ? durationMs(step.timeout) || defaultStepTimeoutMs
      : defaultStepTimeoutMs,
    retry: retrySpec(step.retry, subGoal !== undefined),
    ...(step.versionRange !== "" ? { versionRange: step.versionRange } : {}),
    ...(subGoal !== undefined
      ? { subGoal: { kind: subGoal.kind, input: subGoal.input ?? {} } }
      : {}),
  };
}

/** Idempotency key of the child goal of a sub-goal step attempt. */
export function childKey(goalId: string, stepId: string, attempt: number): string {
  return `${goalId}:${stepId}:${attempt}`;
}

type EventKind = MessageInitShape<typeof GoalEventSchema>["kind"];

/** One transition in progress: copy-on-write of the state and the commands it yields. */
class Tx {
  readonly commands: GoalCommand[] = [];
  private draft: GoalState | undefined;
  private readonly touched = new Set<string>();

  constructor(
    private readonly base: GoalState,
    private readonly options: ReduceOptions,
  ) {}

  get state(): GoalState {
    return this.draft ?? this.base;
  }

  private write(): GoalState {
    this.draft ??= { ...this.base, steps: { ...this.base.steps } };
    return this.draft;
  }

  /** A writable copy of one step (its attempt records copied too). */
  private step(id: string): StepRuntime {
    const s = this.write();
    if (!this.touched.has(id)) {
      const old = s.steps[id]!;
      s.steps[id] = {
        ...old,
        agentIds: [...old.agentIds],
        attempts: old.attempts.map((a) => ({ ...a })),
      };
      this.touched.add(id);
    }
    return s.steps[id]!;
  }

  done(): Transition {
    return { state: this.state, commands: this.commands };
  }

  emit(at: number, kind: EventKind): void {
    const s = this.write();
    s.sequence += 1;
    this.commands.push({
      type: "emitEvent",
      event: create(GoalEventSchema, {
        goalId: s.goalId,
        tenantId: s.tenantId,
        sequence: BigInt(s.sequence),
        time: timestampFromMs(at),
        kind,
      }),
    });
  }

  planned(plan: Plan, at: number): void {
    if (this.state.plan !== undefined) return;
    const s = this.write();
    s.status = GoalStatus.RUNNING;
    s.plan = {
      planId: plan.planId,
      strategy: plan.strategy,
      outputStep: plan.outputStep || (plan.steps[plan.steps.length - 1]?.stepId ?? ""),
      collaborative: plan.collaborative,
      parametersVersion: plan.parametersVersion,
    };
    s.stepOrder = plan.steps.map((p) => p.stepId);
    s.steps = {};
    for (const p of plan.steps) {
      s.steps[p.stepId] = {
        spec: stepSpecOf(p),
        status: StepStatus.PENDING,
        attempt: 0,
        attempts: [],
        agentIds: [],
      };
    }
    this.emit(at, { case: "planned", value: { plan } });
    this.advance(at);
  }

  /** Dispatches every ready step; finishes the goal when every step succeeded. */
  advance(at: number): void {
    const s = this.state;
    if (isTerminal(s.status)) return;
    let allDone = s.stepOrder.length > 0;
    for (const id of s.stepOrder) {
      const step = s.steps[id]!;
      if (step.status !== StepStatus.SUCCEEDED) allDone = false;
      if (step.status !== StepStatus.PENDING) continue;
      const ready = step.spec.dependsOn.every((d) => s.steps[d]?.status === StepStatus.SUCCEEDED);
      if (ready) this.startAttempt(id, 1, at);
      if (isTerminal(this.state.status)) return;
    }
    if (allDone) {
      const out = this.state.steps[this.state.plan!.outputStep]?.output ?? null;
      this.finish(at, GoalStatus.SUCCEEDED, out, undefined);
    }
  }

  /** Outputs of succeeded steps, for templates. */
  private outputs(): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    for (const [id, st] of Object.entries(this.state.steps)) {
      if (st.status === StepStatus.SUCCEEDED) out[id] = st.output ?? null;
    }
    return out;
  }

  /** The step's input with templates resolved; undefined (and the step failed) if impossible. */
  stepInput(step: StepRuntime, at?: number): JsonObject | undefined {
    const raw = step.spec.subGoal?.input ?? step.spec.input;
    try {
      return resolveTemplates(raw, {
        input: this.state.input,
        steps: this.outputs(),
      }) as JsonObject;
    } catch (err) {
      if (at !== undefined) {
        this.failStep(step.spec.stepId, at, {
          code: "INVALID_ARGUMENT",
          message: `input of step "${step.spec.stepId}": ${(err as Error).message}`,
          retryable: false,
        });
      }
      return undefined;
    }
  }

  job(step: StepRuntime, record: AttemptRecord, input: JsonObject, at: number): StepJob {
    return create(StepJobSchema, {
      attemptId: record.attemptId,
      goalId: this.state.goalId,
      tenantId: this.state.tenantId,
      stepId: step.spec.stepId,
      capability: step.spec.capability,
      attempt: record.attempt,
      replica: record.replica,
      input,
      timeout: durationFromMs(step.spec.timeoutMs),
      deadline: timestampFromMs(this.state.deadlineMs),
      dispatchedAt: timestampFromMs(at),
      attemptDeadline: timestampFromMs(
        attemptDeadlineMs(record.dispatchedAtMs, step.spec.timeoutMs),
      ),
    });
  }

  startChild(step: StepRuntime, attempt: number, deadlineMs: number): void {
    const input = this.stepInput(step);
    if (input === undefined) return;
    this.commands.push({
      type: "startChildGoal",
      stepId: step.spec.stepId,
      attempt,
      idempotencyKey: childKey(this.state.goalId, step.spec.stepId, attempt),
      kind: step.spec.subGoal!.kind,
      input,
      deadlineMs,
    });
  }

  private startAttempt(id: string, attempt: number, at: number): void {
    const current = this.state.steps[id]!;
    const input = this.stepInput(current, at);
    if (input === undefined) return;
    const step = this.step(id);
    step.attempt = attempt;
    step.retryAtMs = undefined;
    step.startedAtMs ??= at;
    if (step.spec.subGoal !== undefined) {
      step.status = StepStatus.RUNNING;
      this.startChild(step, attempt, this.state.deadlineMs);
      this.emit(at, {
        case: "stepDispatched",
        value: {
          stepId: id,
          attempt,
          attemptId: childKey(this.state.goalId, id, attempt),
          capability: "",
        },
      });
      return;
    }
    step.status = StepStatus.DISPATCHED;
    for (let replica = 0; replica < step.spec.replicas; replica++) {
      const record: AttemptRecord = {
        attemptId: attemptIdOf(this.state.goalId, id, attempt, replica),
        attempt,
        replica,
        status: "dispatched",
        agentId: "",
        dispatchedAtMs: at,
        timeoutAtMs: attemptTimeoutAtMs(at, step.spec.timeoutMs),
      };
      step.attempts.push(record);
      this.commands.push({ type: "dispatchJob", job: this.job(step, record, input, at) });
      this.commands.push({
        type: "scheduleTimeout",
        attemptId: record.attemptId,
        at: record.timeoutAtMs,
      });
      this.emit(at, {
        case: "stepDispatched",
        value: {
          stepId: id,
          attempt,
          attemptId: record.attemptId,
          capability: step.spec.capability,
          replica,
        },
      });
    }
  }

  /** The live record of the step's current attempt with this id, if any. */
  private liveRecord(attemptId: string, stepId?: string): [string, number] | undefined {
    const ids = stepId !== undefined ? [stepId] : this.state.stepOrder;
    for (const id of ids) {
      const step = this.state.steps[id];
      if (step === undefined || isStepTerminal(step.status)) continue;
      const i = step.attempts.findIndex((a) => a.attemptId === attemptId);
      if (i < 0) continue;
      const r = step.attempts[i]!;
      if (r.attempt !== step.attempt) return undefined;
      if (r.status !== "dispatched" && r.status !== "running") return undefined;
      return [id, i];
    }
    return undefined;
  }

  result(result: StepResult, at: number): void {
    const found = this.liveRecord(result.attemptId, result.stepId);
    if (found === undefined) return;
    const [id, i] = found;
    const current = this.state.steps[id]!.attempts[i]!;
    switch (result.status) {
      case StepResultStatus.STARTED: {
        if (current.status !== "dispatched") return;
        const step = this.step(id);
        const r = step.attempts[i]!;
        r.status = "running";
        r.agentId = result.agentId;
        r.startedAtMs = result.startedAt ? timestampMs(result.startedAt) : at;
        if (step.status === StepStatus.DISPATCHED) step.status = StepStatus.RUNNING;
        this.emit(at, {
          case: "stepStarted",
          value: { stepId: id, attempt: r.attempt, agentId: result.agentId },
        });
        return;
      }
      case StepResultStatus.SUCCEEDED: {
        const r = this.step(id).attempts[i]!;
        r.status = "succeeded";
        r.agentId = result.agentId || r.agentId;
        r.finishedAtMs = at;
        r.cost = result.cost;
        r.output = result.output === undefined ? null : encodeJson(ValueSchema, result.output);
        break;
      }
      case StepResultStatus.FAILED:
      case StepResultStatus.CANCELLED: {
        const r = this.step(id).attempts[i]!;
        r.status = "failed";
        r.agentId = result.agentId || r.agentId;
        r.finishedAtMs = at;
        r.cost = result.cost;
        r.error =
          result.status === StepResultStatus.CANCELLED
            ? { code: "CANCELLED", message: "the agent abandoned the attempt", retryable: true }
            : fromErrorInfo(result.error, "the agent reported a failure without an error");
        // An agent refusing a job it got only after the attempt's deadline, reported
        // after the executor's own timeout of it: the executor held that timeout
        // while no agent offering the capability was live, so no agent could take it.
        if (
          current.status === "dispatched" &&
          at >= current.timeoutAtMs &&
          r.error.code === "DEADLINE_EXCEEDED" &&
          r.error.retryable
        ) {
          r.error = this.notTaken(id, r.attempt);
        }
        break;
      }
      default:
        return;
    }
    this.decide(id, at);
  }

  private notTaken(id: string, attempt: number): ErrorData {
    const capability = this.state.steps[id]!.spec.capability;
    return {
      code: notTakenCode,
      message: `no agent took attempt ${attempt} of step "${id}": none offering ${capability} was live`,
      retryable: true,
    };
  }

  timedOut(attemptId: string, at: number, untaken = false): void {
    const found = this.liveRecord(attemptId);
    if (found === undefined) return;
    const [id, i] = found;
    // An early timer (clock skew between replicas) changes nothing.
    if (at < this.state.steps[id]!.attempts[i]!.timeoutAtMs) return;
    const r = this.step(id).attempts[i]!;
    r.status = "failed";
    r.finishedAtMs = at;
    const spec = this.state.steps[id]!.spec;
    r.error = untaken
      ? this.notTaken(id, r.attempt)
      : {
          code: "TIMEOUT",
          message: `attempt ${r.attempt} of step "${id}" timed out after ${spec.timeoutMs}ms`,
          retryable: true,
        };
    this.cancelSignal(id, "attempt timed out");
    this.decide(id, at);
  }

  /** After a replica answered: arbitrate, then succeed, retry, fail or keep waiting. */
  private decide(id: string, at: number): void {
    const step = this.state.steps[id]!;
    const records = step.attempts.filter((a) => a.attempt === step.attempt);
    const capability = step.spec.capability;
    const reliability = this.options.reliability ?? (() => 0.5);
    const verdict = arbitrate(
      step.spec.replicas,
      records.map((r) => ({
        replica: r.replica,
        agentId: r.agentId,
        output: r.output,
        state:
          r.status === "succeeded" ? "succeeded" : r.status === "failed" ? "failed" : "pending",
      })),
      (agentId) => reliability(agentId, capability),
    );
    if (verdict.kind === "waiting") return;
    if (verdict.kind === "decided") {
      const outstanding = records.some((r) => r.status === "dispatched" || r.status === "running");
      const w = this.step(id);
      for (const r of w.attempts) {
        if (r.attempt === step.attempt && (r.status === "dispatched" || r.status === "running")) {
          r.status = "cancelled";
          r.finishedAtMs = at;
        }
      }
      if (outstanding) this.cancelSignal(id, "step already decided");
      this.succeedStep(id, at, verdict.output, verdict.agentIds, verdict.disagreement);
      return;
    }
    // Every replica failed: the attempt failed with the most telling error.
    const errors = records.map((r) => r.error!).filter(Boolean);
    const error =
      errors.find((e) => !e.retryable || step.spec.retry.nonRetryableCodes.includes(e.code)) ??
      errors[errors.length - 1]!;
    // Fencing: an agent that lost a job may be stalled, not dead, and run on until the
    // attempt's deadline; the next attempt starts after it, so the two never overlap.
    const lost = records.filter((r) => r.error?.code === agentLostCode);
    const notBefore = Math.max(0, ...lost.map((r) => r.timeoutAtMs));
    if (records.every((r) => r.error?.code === rateLimitedCode)) {
      // Held back by a rate limit: the next attempt waits for its reserved turn, no backoff.
      const turns = records.map((r) => Number(r.error?.details?.notBeforeMs ?? 0));
      this.attemptFailed(id, at, error, Math.max(at, ...turns), true);
      return;
    }
    this.attemptFailed(id, at, error, notBefore);
  }

  private attemptFailed(
    id: string,
    at: number,
    error: ErrorData,
    notBeforeMs = 0,
    exactlyAtNotBefore = false,
  ): void {
    const step = this.state.steps[id]!;
    // Attempts no agent could take (none was live) are not the step's failures.
    const charged = step.attempt - unchargedAttempts(step);
    const retry = shouldRetry(step.spec.retry, charged, error);
    this.emit(at, {
      case: "stepFailed",
      value: { stepId: id, attempt: step.attempt, error: toErrorInfo(error), willRetry: retry },
    });
    if (!retry) {
      this.failStep(id, at, error, false);
      return;
    }
    const wait = exactlyAtNotBefore
      ? Math.max(0, notBeforeMs - at)
      : Math.max(backoffMs(step.spec.retry, charged), notBeforeMs - at);
    const w = this.step(id);
    w.status = StepStatus.RETRY_WAIT;
    w.error = error;
    w.retryAtMs = at + wait;
    this.commands.push({
      type: "scheduleRetry",
      stepId: id,
      attempt: w.attempt + 1,
      at: at + wait,
    });
    this.emit(at, {
      case: "stepRetried",
      value: { stepId: id, nextAttempt: w.attempt + 1, backoff: durationFromMs(wait) },
    });
  }

  retryDue(id: string, attempt: number, at: number): void {
    const step = this.state.steps[id];
    if (step === undefined || step.status !== StepStatus.RETRY_WAIT) return;
    if (attempt !== step.attempt + 1) return;
    this.startAttempt(id, attempt, at);
  }

  private succeedStep(
    id: string,
    at: number,
    output: JsonValue,
    agentIds: string[],
    disagreement: boolean,
  ): void {
    const w = this.step(id);
    w.status = StepStatus.SUCCEEDED;
    w.output = output;
    w.agentIds = agentIds;
    w.finishedAtMs = at;
    w.error = undefined;
    if (w.spec.replicas > 1) w.disagreement = disagreement;
    this.emit(at, {
      case: "stepSucceeded",
      value: {
        stepId: id,
        attempt: w.attempt,
        output: fromJson(ValueSchema, output),
        agentIds,
        disagreement,
      },
    });
    this.advance(at);
  }

  /** Fails a step terminally and with it the goal. */
  private failStep(id: string, at: number, error: ErrorData, announce = true): void {
    const w = this.step(id);
    if (announce) {
      this.emit(at, {
        case: "stepFailed",
        value: { stepId: id, attempt: w.attempt, error: toErrorInfo(error), willRetry: false },
      });
    }
    w.status = StepStatus.FAILED;
    w.error = error;
    w.finishedAtMs = at;
    this.stopAll(at, GoalStatus.FAILED, { ...error, message: `step "${id}": ${error.message}` });
  }

  private cancelSignal(stepId: string, reason: string): void {
    this.commands.push({
      type: "publishCancel",
      signal: create(CancelSignalSchema, {
        goalId: this.state.goalId,
        tenantId: this.state.tenantId,
        stepId,
        reason,
      }),
    });
  }

  /** Ends the goal: pending steps never run, running ones are signalled. */
  stopAll(at: number, status: GoalStatus, error: ErrorData): void {
    let running = false;
    for (const id of this.state.stepOrder) {
      const step = this.state.steps[id]!;
      if (isStepTerminal(step.status)) continue;
      const w = this.step(id);
      if (w.status === StepStatus.DISPATCHED || w.status === StepStatus.RUNNING) {
        if (w.spec.subGoal !== undefined) {
          this.commands.push({
            type: "cancelChildGoal",
            childGoalId: w.childGoalId ?? "",
            idempotencyKey: childKey(this.state.goalId, id, w.attempt),
            reason: error.message,
          });
        } else running = true;
      }
      for (const r of w.attempts) {
        if (r.status === "dispatched" || r.status === "running") {
          r.status = "cancelled";
          r.finishedAtMs = at;
        }
      }
      w.status = StepStatus.CANCELLED;
      w.retryAtMs = undefined;
      w.finishedAtMs = at;
    }
    if (running) {
      this.commands.push({
        type: "publishCancel",
        signal: create(CancelSignalSchema, {
          goalId: this.state.goalId,
          tenantId: this.state.tenantId,
          reason: error.message,
        }),
      });
    }
    this.finish(at, status, undefined, error);
  }

  finish(at: number, status: GoalStatus, output: JsonValue | undefined, error?: ErrorData): void {
    const s = this.write();
    s.status = status;
    s.finishedAtMs = at;
    if (output !== undefined) s.output = output;
    if (error !== undefined) s.error = error;
    this.emit(at, {
      case: "finished",
      value: {
        status,
        output: output === undefined ? undefined : fromJson(ValueSchema, output),
        error: error === undefined ? undefined : toErrorInfo(error),
      },
    });
    this.commands.push({
      type: "finishGoal",
      status,
      ...(output !== undefined ? { output } : {}),
      ...(error !== undefined ? { error } : {}),
    });
  }

  childStarted(id: string, attempt: number, childGoalId: string): void {
    const step = this.state.steps[id];
    if (step?.spec.subGoal === undefined || isStepTerminal(step.status)) return;
    if (step.attempt !== attempt || step.childGoalId === childGoalId) return;
    this.step(id).childGoalId = childGoalId;
  }

  childFinished(input: Extract<GoalInput, { type: "childGoalFinished" }>): void {
    const step = this.state.steps[input.stepId];
    if (step?.spec.subGoal === undefined || step.status !== StepStatus.RUNNING) return;
    if (step.attempt !== input.attempt) return;
    if (input.childGoalId && !step.childGoalId)
      this.step(input.stepId).childGoalId = input.childGoalId;
    if (input.status === GoalStatus.SUCCEEDED) {
      this.succeedStep(input.stepId, input.at, input.output ?? null, [], false);
      return;
    }
    const error = input.error ?? {
      code: input.status === GoalStatus.CANCELLED ? "CANCELLED" : "UNKNOWN",
      message: "the child goal did not succeed",
      retryable: false,
    };
    this.attemptFailed(input.stepId, input.at, error);
  }
}
