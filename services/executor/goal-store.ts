/**
 * The executor's state of a goal in the store, and back: the goal row (status,
 * output, event counter, optimistic-lock version), the plan row (the planned
 * steps), one row per step (status, attempt number, due time) and one per
 * attempt (keyed by attempt id). `loadGoal` rebuilds the reducer's
 * `GoalState` from them; `saveTransition` writes a transition's changes and
 * events in the caller's transaction, failing with ABORTED when another
 * replica changed the goal first.
 *
 * Each non-terminal step carries `next_attempt_at`, the earliest moment
 * something is due for it (a retry, an attempt timeout, a re-dispatch check,
 * a sub-goal check, the goal deadline); tickers on every replica claim due
 * steps with SKIP LOCKED, so timers survive any replica.
 *
 * @example
 * const loaded = await loadGoal(store.tenant(t), goalId);
 * const { state, commands } = reduceGoal(loaded.state, input);
 * await store.transaction((tx) => saveTransition(tx.tenant(t), loaded, state, commands, Date.now()));
 */
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type GoalEvent, GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { type Plan, PlanSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { NewStep, PlannedAttempt } from "../../lib/store/plan-repository.js";
import type {
  AttemptOutcome,
  ErrorRecord,
  GoalRecord,
  GoalStatusName,
  StepAttemptRecord,
  StepRecord,
  StepStatusName,
} from "../../lib/store/records.js";
import type { Store, TenantStore } from "../../lib/store/store.js";
import {
  type AttemptRecord,
  type ErrorData,
  type GoalCommand,
  type GoalState,
  isStepTerminal,
  type StepRuntime,
  stepSpecOf,
} from "./domain/index.js";

/** A goal as loaded: its row, its reducer state and the versions to write against. */
export interface LoadedGoal {
  goal: GoalRecord;
  state: GoalState;
  /** Version of each step row, for optimistic updates. */
  stepVersions: Map<string, number>;
  /** The planned steps, when planned. */
  plan: Plan | undefined;
}

/** How far ahead the step due times look; see the module comment. */
export interface DueTimes {
  /** A DISPATCHED step nobody started is re-published (same attempt id) after this. Default 5 s. */
  redispatchCheckMs: number;
  /** A running sub-goal step checks its child goal this often. Default 5 s. */
  subGoalCheckMs: number;
}

export const defaultDueTimes: DueTimes = { redispatchCheckMs: 5_000, subGoalCheckMs: 5_000 };

/** Deadline of a goal submitted without one. */
export const defaultGoalDeadlineMs = 10 * 60_000;

export async function loadGoal(tenant: TenantStore, goalId: string): Promise<LoadedGoal> {
  const goal = await tenant.goals.get(goalId);
  if (!goal.planId) return assemble(goal, undefined, [], []);
  const [planned, rows, attempts] = await Promise.all([
    storedPlan(tenant, goal.planId),
    tenant.plans.steps(goal.planId),
    tenant.plans.attemptsOfPlans([goal.planId]),
  ]);
  return assemble(goal, planned, rows, attempts);
}

/**
 * Several goals of one tenant in three statements (goals, their steps, their
 * attempts), by id; ids that do not exist are absent.
 */
export async function loadGoals(
  tenant: TenantStore,
  goalIds: readonly string[],
): Promise<Map<string, LoadedGoal>> {
  const goals = await tenant.goals.getMany(goalIds);
  const planIds = goals.flatMap((g) => (g.planId ? [g.planId] : []));
  const [planned, rows, attempts] = await Promise.all([
    Promise.all(planIds.map((id) => storedPlan(tenant, id))),
    tenant.plans.stepsOfPlans(planIds),
    tenant.plans.attemptsOfPlans(planIds),
  ]);
  const plans = new Map(planned.map((p) => [p.summary.planId, p]));
  const stepsOf = groupBy(rows, (r) => r.planId);
  const attemptsOf = groupBy(attempts, (a) => a.planId);
  const out = new Map<string, LoadedGoal>();
  for (const goal of goals) {
    const planId = goal.planId ?? "";
    out.set(
      goal.id,
      assemble(goal, plans.get(planId), stepsOf.get(planId) ?? [], attemptsOf.get(planId) ?? []),
    );
  }
  return out;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(key(item));
    if (list) list.push(item);
    else out.set(key(item), [item]);
  }
  return out;
}

/** A goal row with its plan, step rows (in plan order) and their attempts, as the reducer's state. */
function assemble(
  goal: GoalRecord,
  planned: StoredPlan | undefined,
  rows: readonly StepRecord[],
  attempts: readonly StepAttemptRecord[],
): LoadedGoal {
  const state = goalStateOf(goal);
  const stepVersions = new Map<string, number>();
  if (!planned) return { goal, state, stepVersions, plan: undefined };
  const { plan } = planned;
  state.plan = planned.summary;
  const specs = new Map(plan.steps.map((s) => [s.stepId, s]));
  const byStep = groupBy(attempts, (a) => a.stepId);
  for (const row of rows) {
    const spec = specs.get(row.stepId);
    if (spec === undefined) {
      throw new MeshError(Code.DataLoss, `step ${row.stepId} is missing from plan ${goal.planId}`);
    }
    state.stepOrder.push(row.stepId);
    state.steps[row.stepId] = stepRuntime(row, stepSpecOf(spec), byStep.get(row.stepId) ?? []);
    stepVersions.set(row.stepId, row.version);
  }
  return { goal, state, stepVersions, plan };
}

/** The reducer's state of a goal row, before its plan and steps are added. */
export function goalStateOf(goal: GoalRecord): GoalState {
  const createdAtMs = goal.createdAt.getTime();
  return {
    goalId: goal.id,
    tenantId: goal.tenantId,
    kind: goal.kind,
    input: goal.input,
    status: GoalStatus[goal.status],
    createdAtMs,
    deadlineMs: goal.deadline?.getTime() ?? createdAtMs + defaultGoalDeadlineMs,
    stepOrder: [],
    steps: {},
    sequence: goal.lastEventSeq,
    ...(goal.finishedAt ? { finishedAtMs: goal.finishedAt.getTime() } : {}),
    ...(goal.status === "SUCCEEDED" ? { output: goal.output } : {}),
    ...(goal.error ? { error: errorData(goal.error) } : {}),
    ...(goal.parentGoalId ? { parentGoalId: goal.parentGoalId } : {}),
    ...(goal.parentStepId ? { parentStepId: goal.parentStepId } : {}),
  };
}

interface StoredPlan {
  plan: Plan;
  summary: NonNullable<GoalState["plan"]>;
}

/**
 * Parsed plans by tenant and id. A plan row is written once and never
 * changed, so every replica may keep what it read; this saves a statement and
 * a JSON parse on every load of a planned goal.
 */
const plans = new Map<string, StoredPlan>();
const maxCachedPlans = 10_000;

async function storedPlan(tenant: TenantStore, planId: string): Promise<StoredPlan> {
  const key = `${tenant.tenantId}/${planId}`;
  const cached = plans.get(key);
  if (cached) return cached;
  const row = await tenant.plans.get(planId);
  const stored: StoredPlan = {
    plan: fromJson(PlanSchema, row.spec, { ignoreUnknownFields: true }),
    summary: {
      planId: row.id,
      strategy: row.strategy,
      outputStep: row.outputStep,
      collaborative: row.collaborative,
      parametersVersion: row.parametersVersion ?? "",
    },
  };
  rememberPlan(key, stored);
  return stored;
}

function rememberPlan(key: string, stored: StoredPlan): void {
  if (plans.size >= maxCachedPlans) plans.delete(plans.keys().next().value!);
  plans.set(key, stored);
}

function stepRuntime(
  row: StepRecord,
  spec: ReturnType<typeof stepSpecOf>,
  attempts: StepAttemptRecord[],
): StepRuntime {
  return {
    spec,
    status: StepStatus[row.status],
    attempt: row.attempts,
    attempts: attempts.map((a) => attemptRecord(a, spec.timeoutMs)),
    agentIds: [...row.agentIds],
    ...(row.status === "RETRY_WAIT" && row.nextAttemptAt
      ? { retryAtMs: row.nextAttemptAt.getTime() }
      : {}),
    ...(row.status === "SUCCEEDED" ? { output: row.output } : {}),
    ...(row.error ? { error: errorData(row.error) } : {}),
    ...(row.startedAt ? { startedAtMs: row.startedAt.getTime() } : {}),
    ...(row.finishedAt ? { finishedAtMs: row.finishedAt.getTime() } : {}),
    ...(row.childGoalId ? { childGoalId: row.childGoalId } : {}),
  };
}

const attemptStatus: Record<AttemptOutcome, AttemptRecord["status"]> = {
  DISPATCHED: "dispatched",
  RUNNING: "running",
  SUCCEEDED: "succeeded",
  FAILED: "failed",
  TIMED_OUT: "failed",
  CANCELLED: "cancelled",
};

function attemptRecord(a: StepAttemptRecord, timeoutMs: number): AttemptRecord {
  const dispatchedAtMs = a.dispatchedAt.getTime();
  return {
    attemptId: a.attemptId,
    attempt: a.attempt,
    replica: a.replica,
    status: attemptStatus[a.outcome],
    agentId: a.agentId ?? "",
    dispatchedAtMs,
    timeoutAtMs: dispatchedAtMs + timeoutMs,
    ...(a.startedAt ? { startedAtMs: a.startedAt.getTime() } : {}),
    ...(a.finishedAt ? { finishedAtMs: a.finishedAt.getTime() } : {}),
    ...(a.outcome === "SUCCEEDED" ? { output: a.output } : {}),
    ...(a.error ? { error: errorData(a.error) } : {}),
    ...(a.cost !== null ? { cost: a.cost } : {}),
  };
}

function errorData(e: ErrorRecord): ErrorData {
  return {
    code: e.code,
    message: e.message,
    retryable: e.retryable ?? false,
    ...(e.details ? { details: e.details } : {}),
  };
}

function errorRecord(e: ErrorData | undefined): ErrorRecord | null {
  if (e === undefined) return null;
  return {
    code: e.code,
    message: e.message,
    retryable: e.retryable,
    ...(e.details ? { details: e.details } : {}),
  };
}

/** The plan a transition planned, taken from its `planned` event. */
export function plannedPlan(commands: readonly GoalCommand[]): Plan | undefined {
  for (const c of commands) {
    if (c.type === "emitEvent" && c.event.kind.case === "planned") return c.event.kind.value.plan;
  }
  return undefined;
}

/** The earliest moment something is due for a step, or null when nothing is. */
export function stepDueAt(
  state: GoalState,
  step: StepRuntime,
  now: number,
  due: DueTimes,
  recheckDispatch = true,
): Date | null {
  if (isStepTerminal(step.status) || step.status === StepStatus.PENDING) return null;
  let at = state.deadlineMs;
  if (step.status === StepStatus.RETRY_WAIT && step.retryAtMs !== undefined) {
    at = Math.min(at, step.retryAtMs);
  } else if (step.spec.subGoal !== undefined) {
    at = Math.min(at, now + due.subGoalCheckMs);
  } else {
    for (const a of step.attempts) {
      if (a.attempt === step.attempt && (a.status === "dispatched" || a.status === "running")) {
        at = Math.min(at, a.timeoutAtMs);
      }
    }
    if (recheckDispatch && step.status === StepStatus.DISPATCHED) {
      at = Math.min(at, now + due.redispatchCheckMs);
    }
  }
  return new Date(at);
}

/**
 * Saves a transition atomically: in one statement when it can be (the goal
 * row with its events, and for the transition that plans the goal also the
 * plan, its steps as dispatched and their first attempts), else in one
 * transaction. See `saveTransition`.
 */
export function commitTransition(
  store: Store,
  tenantId: string,
  loaded: LoadedGoal,
  next: GoalState,
  commands: readonly GoalCommand[],
  now: number,
  due: DueTimes = defaultDueTimes,
): Promise<LoadedGoal> {
  const planning = oneStatement(loaded.state, next, commands, now, due);
  if (planning !== undefined) {
    return writeTransition(store.tenant(tenantId), loaded, next, commands, now, due, planning);
  }
  return store.transaction((tx) =>
    writeTransition(tx.tenant(tenantId), loaded, next, commands, now, due, undefined),
  );
}

/**
 * Writes `next` (reached from `loaded.state` by `commands`): the goal row with
 * the transition's events first (the optimistic lock every writer of this
 * goal takes: its version and its last event sequence), then the plan,
 * changed steps and attempts; all of it in the goal's statement when
 * `commitTransition` would. Unless it is one statement, call it in a
 * transaction. Returns the goal as now stored, so the caller need not load
 * it again.
 */
export function saveTransition(
  tenant: TenantStore,
  loaded: LoadedGoal,
  next: GoalState,
  commands: readonly GoalCommand[],
  now: number,
  due: DueTimes = defaultDueTimes,
): Promise<LoadedGoal> {
  const planning = oneStatement(loaded.state, next, commands, now, due);
  return writeTransition(tenant, loaded, next, commands, now, due, planning);
}

/** `saveTransition` with `oneStatement`'s answer already at hand. */
async function writeTransition(
  tenant: TenantStore,
  loaded: LoadedGoal,
  next: GoalState,
  commands: readonly GoalCommand[],
  now: number,
  due: DueTimes,
  planning: ReturnType<typeof oneStatement>,
): Promise<LoadedGoal> {
  const before = loaded.state;
  const goalPatch = {
    status: GoalStatus[next.status] as GoalStatusName,
    error: errorRecord(next.error),
    ...(next.output !== undefined ? { output: next.output } : {}),
    ...(next.plan ? { planId: next.plan.planId, strategy: next.plan.strategy } : {}),
    ...(next.finishedAtMs !== undefined && before.finishedAtMs === undefined
      ? { finishedAt: new Date(next.finishedAtMs) }
      : {}),
  };
  const events = commands.flatMap((c) =>
    c.type === "emitEvent"
      ? [{ type: c.event.kind.case ?? "unknown", data: toJson(GoalEventSchema, c.event) }]
      : [],
  );
  const goal = await tenant.goals.update(loaded.goal.id, loaded.goal.version, goalPatch, {
    events,
    afterEventSeq: before.sequence,
    ...(planning?.plan
      ? {
          ctes: tenant.plans.plannedWrites(
            planRow(next, planning.plan),
            planning.steps,
            planning.attempts,
          ),
        }
      : {}),
  });
  const versions = new Map(loaded.stepVersions);
  let plan = loaded.plan;
  if (next.plan && !before.plan) {
    plan = plannedPlan(commands);
    if (plan === undefined) throw new MeshError(Code.Internal, "planned without a plan");
    rememberPlan(`${tenant.tenantId}/${next.plan.planId}`, { plan, summary: next.plan });
    if (planning) {
      for (const id of next.stepOrder) versions.set(id, 1);
      return { goal, state: next, stepVersions: versions, plan };
    }
    const { steps } = await tenant.plans.create(
      planRow(next, plan),
      plan.steps.map((s) => ({
        stepId: s.stepId,
        capability: s.capability || null,
        dependsOn: [...s.dependsOn],
      })),
    );
    for (const s of steps) versions.set(s.stepId, s.version);
  }
  if (next.plan) {
    for (const id of next.stepOrder) {
      const after = next.steps[id]!;
      const prior = before.steps[id];
      if (prior === after) continue;
      const row = await saveStep(tenant, next, id, prior, after, versions.get(id) ?? 1, now, due);
      versions.set(id, row.version);
    }
  }
  return { goal, state: next, stepVersions: versions, plan };
}

/** The plan row of a goal's plan. */
function planRow(next: GoalState, plan: Plan) {
  return {
    id: next.plan!.planId,
    goalId: next.goalId,
    goalKind: next.kind,
    strategy: next.plan!.strategy,
    outputStep: next.plan!.outputStep,
    parametersVersion: next.plan!.parametersVersion,
    rationale: plan.rationale,
    collaborative: next.plan!.collaborative,
    spec: toJson(PlanSchema, plan) as Record<string, JsonValue>,
  };
}

/**
 * Whether the transition is one statement: nothing but the goal row changes
 * (no plan, no step), or it plans the goal and every step is at most freshly
 * dispatched (then the steps are inserted as they end up, with their first
 * attempts). Undefined when it is not.
 */
function oneStatement(
  before: GoalState,
  next: GoalState,
  commands: readonly GoalCommand[],
  now: number,
  due: DueTimes,
): { plan?: Plan; steps: NewStep[]; attempts: PlannedAttempt[] } | undefined {
  if (
    !next.plan ||
    (before.plan && next.stepOrder.every((id) => before.steps[id] === next.steps[id]))
  ) {
    return { steps: [], attempts: [] };
  }
  if (before.plan) return undefined;
  const plan = plannedPlan(commands);
  if (plan === undefined) return undefined;
  const steps: NewStep[] = [];
  const attempts: PlannedAttempt[] = [];
  for (const s of plan.steps) {
    const step = next.steps[s.stepId];
    if (
      step === undefined ||
      step.output !== undefined ||
      step.error !== undefined ||
      step.finishedAtMs !== undefined ||
      step.attempts.some((a) => a.status !== "dispatched" || a.startedAtMs !== undefined)
    ) {
      return undefined;
    }
    steps.push({
      stepId: s.stepId,
      capability: s.capability || null,
      dependsOn: [...s.dependsOn],
      status: StepStatus[step.status] as StepStatusName,
      attempts: step.attempt,
      agentIds: [...step.agentIds],
      ...(step.childGoalId ? { childGoalId: step.childGoalId } : {}),
      nextAttemptAt: stepDueAt(next, step, now, due),
      startedAt: step.startedAtMs !== undefined ? new Date(step.startedAtMs) : null,
    });
    for (const a of step.attempts) {
      attempts.push({
        attemptId: a.attemptId,
        stepId: s.stepId,
        attempt: a.attempt,
        replica: a.replica,
      });
    }
  }
  return { plan, steps, attempts };
}

async function saveStep(
  tenant: TenantStore,
  state: GoalState,
  id: string,
  prior: StepRuntime | undefined,
  after: StepRuntime,
  version: number,
  now: number,
  due: DueTimes,
): Promise<StepRecord> {
  const planId = state.plan!.planId;
  const old = new Map((prior?.attempts ?? []).map((a) => [a.attemptId, a]));
  for (const a of after.attempts) {
    const was = old.get(a.attemptId);
    if (was === a) continue;
    if (was === undefined) {
      await tenant.plans.addAttempt({
        attemptId: a.attemptId,
        planId,
        stepId: id,
        attempt: a.attempt,
        replica: a.replica,
      });
    }
    if (a.status === "running" && (was === undefined || was.status === "dispatched")) {
      await tenant.plans.startAttempt(a.attemptId, a.agentId, new Date(a.startedAtMs ?? now));
    }
    const terminal = a.status !== "dispatched" && a.status !== "running";
    const wasTerminal =
      was !== undefined && was.status !== "dispatched" && was.status !== "running";
    if (terminal && !wasTerminal) {
      await tenant.plans.finishAttempt(a.attemptId, {
        outcome:
          a.status === "succeeded"
            ? "SUCCEEDED"
            : a.status === "cancelled"
              ? "CANCELLED"
              : a.error?.code === "TIMEOUT"
                ? "TIMED_OUT"
                : "FAILED",
        ...(a.output !== undefined ? { output: a.output } : {}),
        ...(a.error ? { error: errorRecord(a.error)! } : {}),
        ...(a.agentId ? { agentId: a.agentId } : {}),
        ...(a.cost !== undefined ? { cost: a.cost } : {}),
        finishedAt: new Date(a.finishedAtMs ?? now),
      });
    }
  }
  return tenant.plans.updateStep(planId, id, version, {
    status: StepStatus[after.status] as StepStatusName,
    attempts: after.attempt,
    output: after.status === StepStatus.SUCCEEDED ? (after.output ?? null) : null,
    error: errorRecord(after.error),
    agentIds: after.agentIds,
    childGoalId: after.childGoalId ?? null,
    nextAttemptAt: stepDueAt(state, after, now, due),
    leaseOwner: null,
    leaseExpiresAt: null,
    startedAt: after.startedAtMs !== undefined ? new Date(after.startedAtMs) : null,
    ...(after.finishedAtMs !== undefined ? { finishedAt: new Date(after.finishedAtMs) } : {}),
  });
}

/** A stored event as the wire message. */
export function eventOf(data: JsonValue): GoalEvent {
  return fromJson(GoalEventSchema, data, { ignoreUnknownFields: true });
}
