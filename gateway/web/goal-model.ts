/**
 * What the dashboard knows of one goal, folded from snapshots (`GetGoal`,
 * `ListGoals`) and events (`WatchGoal`) that arrive in any order and more
 * than once: `WatchGoal` replays the whole history first, so its old events
 * land on a snapshot that is already newer. Every merge only moves forward —
 * a goal or step never leaves a terminal status, and within one attempt a
 * step only advances (dispatched → running → succeeded) — so the plan never
 * goes backwards and the list row, the plan and the steps agree. Also keeps
 * the event history and a timeline of attempts. Pure, browser-safe.
 *
 * @example
 * const view = goalView(snapshot);
 * for await (const { event } of mesh.executor.watchGoal({ goalId })) applyEvent(view, event!);
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { type ErrorInfo, GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import {
  type Goal,
  type GoalEvent,
  GoalSchema,
  type StepState,
  StepStateSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";
import type { Plan } from "../../gen/agentmesh/v1/planner_pb.js";

/** One attempt of one step (one replica of it, for arbitrated steps). */
export interface Attempt {
  stepId: string;
  attempt: number;
  replica: number;
  agentId?: string;
  /** ms since the epoch. */
  dispatchedAt?: number;
  startedAt?: number;
  endedAt?: number;
  outcome: "dispatched" | "running" | "succeeded" | "failed" | "retrying";
  error?: ErrorInfo;
  /** Backoff before the next attempt, when this one is retried. */
  backoffMs?: number;
}

export interface GoalView {
  goal: Goal;
  /** Highest event sequence applied (to resume a stream after it). */
  lastSeq: number;
  /** Events by sequence, without duplicates. */
  events: GoalEvent[];
  attempts: Attempt[];
  /** The plan in force (its steps carry their planned input). */
  plan?: Plan;
  /** Whether `goal.steps` came from `GetGoal` or the history (not a `ListGoals` row). */
  detailed: boolean;
}

const terminalGoal = new Set([GoalStatus.SUCCEEDED, GoalStatus.FAILED, GoalStatus.CANCELLED]);
const terminalStep = new Set([StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.CANCELLED]);

export const isTerminal = (s: GoalStatus) => terminalGoal.has(s);

/** Order of a step's statuses within one attempt. */
const stepRank: Record<StepStatus, number> = {
  [StepStatus.UNSPECIFIED]: 0,
  [StepStatus.PENDING]: 1,
  [StepStatus.DISPATCHED]: 2,
  [StepStatus.RUNNING]: 3,
  [StepStatus.RETRY_WAIT]: 4,
  [StepStatus.SUCCEEDED]: 5,
  [StepStatus.FAILED]: 5,
  [StepStatus.CANCELLED]: 5,
};

const goalRank = (s: GoalStatus) => (isTerminal(s) ? 4 : s === GoalStatus.UNSPECIFIED ? 0 : s);

/** A view of a goal as first seen (a copy: snapshots stay as they came). */
export function goalView(snapshot: Goal): GoalView {
  const view: GoalView = {
    goal: create(GoalSchema, { goalId: snapshot.goalId }),
    lastSeq: 0,
    events: [],
    attempts: [],
    detailed: false,
  };
  mergeSnapshot(view, snapshot);
  return view;
}

/** Moves `step` to `status` of `attempt` unless that would take it backwards. */
function advance(step: StepState, status: StepStatus, attempt: number): boolean {
  if (terminalStep.has(step.status)) return false;
  if (attempt && attempt < step.attempts) return false;
  const newer = attempt > step.attempts;
  if (!newer && stepRank[status] <= stepRank[step.status]) return false;
  step.status = status;
  if (attempt) step.attempts = attempt;
  return true;
}

function setGoalStatus(goal: Goal, status: GoalStatus): void {
  if (isTerminal(goal.status)) return;
  if (goalRank(status) > goalRank(goal.status)) goal.status = status;
}

/**
 * Folds a snapshot in: `GetGoal` (with steps) or a `ListGoals` row (without).
 * Fields a snapshot has are taken; statuses only move forward.
 */
export function mergeSnapshot(view: GoalView, snapshot: Goal): void {
  const g = view.goal;
  const { steps, status, ...rest } = clone(GoalSchema, snapshot);
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined || v === "" || k === "$typeName") continue;
    if (k === "labels" && Object.keys(v as object).length === 0) continue;
    (g as unknown as Record<string, unknown>)[k] = v;
  }
  setGoalStatus(g, status);
  if (steps.length === 0) return;
  view.detailed = true;
  for (const s of steps) {
    const mine = g.steps.find((x) => x.stepId === s.stepId);
    if (!mine) {
      g.steps.push(s);
      continue;
    }
    advance(mine, s.status, s.attempts);
    if (s.output !== undefined) mine.output = s.output;
    if (s.error) mine.error = s.error;
    if (s.startedAt) mine.startedAt = s.startedAt;
    if (s.finishedAt) mine.finishedAt = s.finishedAt;
    if (s.agentIds.length) mine.agentIds = s.agentIds;
    if (s.childGoalId) mine.childGoalId = s.childGoalId;
    if (!mine.capability) mine.capability = s.capability;
  }
}

/** Applies one event; false if it was seen before. */
export function applyEvent(view: GoalView, event: GoalEvent): boolean {
  const seq = Number(event.sequence);
  if (view.events.some((e) => Number(e.sequence) === seq)) return false;
  view.events.push(event);
  view.events.sort((a, b) => Number(a.sequence - b.sequence));
  view.lastSeq = Math.max(view.lastSeq, seq);
  const g = view.goal;
  const at = event.time ? timestampMs(event.time) : undefined;
  const step = (id: string) => g.steps.find((s) => s.stepId === id);
  const attemptOf = (stepId: string, attempt: number, replica = 0) => {
    let a = view.attempts.find(
      (x) => x.stepId === stepId && x.attempt === attempt && x.replica === replica,
    );
    if (!a) {
      a = { stepId, attempt, replica, outcome: "dispatched" };
      view.attempts.push(a);
      view.attempts.sort((x, y) => x.stepId.localeCompare(y.stepId) || x.attempt - y.attempt);
    }
    return a;
  };
  const k = event.kind;
  switch (k.case) {
    case "submitted":
      setGoalStatus(g, GoalStatus.PENDING);
      break;
    case "planned": {
      setGoalStatus(g, GoalStatus.RUNNING);
      view.plan = k.value.plan;
      for (const p of k.value.plan?.steps ?? []) {
        if (step(p.stepId)) continue;
        g.steps.push(
          create(StepStateSchema, {
            stepId: p.stepId,
            capability: p.capability,
            dependsOn: p.dependsOn,
            status: StepStatus.PENDING,
          }),
        );
      }
      view.detailed = true;
      break;
    }
    case "stepDispatched": {
      const s = step(k.value.stepId);
      if (s) advance(s, StepStatus.DISPATCHED, k.value.attempt);
      const a = attemptOf(k.value.stepId, k.value.attempt, k.value.replica);
      a.dispatchedAt ??= at;
      break;
    }
    case "stepStarted": {
      const s = step(k.value.stepId);
      if (s) {
        advance(s, StepStatus.RUNNING, k.value.attempt);
        if (!s.agentIds.includes(k.value.agentId)) s.agentIds.push(k.value.agentId);
      }
      // Replicas start under one attempt number: the first without an agent is this one.
      const a =
        view.attempts.find(
          (x) => x.stepId === k.value.stepId && x.attempt === k.value.attempt && !x.agentId,
        ) ?? attemptOf(k.value.stepId, k.value.attempt);
      a.agentId = k.value.agentId;
      a.startedAt ??= at;
      if (a.outcome === "dispatched") a.outcome = "running";
      break;
    }
    case "stepSucceeded": {
      const s = step(k.value.stepId);
      if (s) {
        advance(s, StepStatus.SUCCEEDED, k.value.attempt);
        if (k.value.output !== undefined) s.output = k.value.output;
        if (k.value.agentIds.length) s.agentIds = k.value.agentIds;
      }
      const mine = view.attempts.filter(
        (a) => a.stepId === k.value.stepId && a.attempt === k.value.attempt,
      );
      if (mine.length === 0) mine.push(attemptOf(k.value.stepId, k.value.attempt));
      mine.forEach((a, i) => {
        a.outcome = "succeeded";
        a.endedAt ??= at;
        // An agent that finished before its start was reported: the result names it.
        a.agentId ??= k.value.agentIds[i];
      });
      break;
    }
    case "stepFailed": {
      const s = step(k.value.stepId);
      const status = k.value.willRetry ? StepStatus.RETRY_WAIT : StepStatus.FAILED;
      if (s) {
        advance(s, status, k.value.attempt);
        if (k.value.error) s.error = k.value.error;
      }
      const a = attemptOf(k.value.stepId, k.value.attempt);
      a.outcome = k.value.willRetry ? "retrying" : "failed";
      if (k.value.error) a.error = k.value.error;
      a.endedAt ??= at;
      break;
    }
    case "stepRetried": {
      const a = attemptOf(k.value.stepId, k.value.nextAttempt - 1);
      a.outcome = "retrying";
      if (k.value.backoff) {
        a.backoffMs =
          Number(k.value.backoff.seconds) * 1000 + Math.round(k.value.backoff.nanos / 1e6);
      }
      break;
    }
    case "finished":
      setGoalStatus(g, k.value.status);
      if (k.value.output !== undefined) g.output = k.value.output;
      if (k.value.error) g.error = k.value.error;
      if (event.time && !g.finishedAt) g.finishedAt = event.time;
      break;
    default:
      break;
  }
  return true;
}

/** `done/total` steps, or "–" when the steps are not known yet. */
export function stepCount(view: GoalView): string {
  const steps = view.goal.steps;
  if (!view.detailed) return "…";
  if (steps.length === 0) return "–";
  return `${steps.filter((s) => s.status === StepStatus.SUCCEEDED).length}/${steps.length}`;
}
