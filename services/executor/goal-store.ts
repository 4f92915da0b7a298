/**
 * The executor's state of a goal in the store, and back: the goal row (status,
 * output, event counter, optimistic-lock version), the plan row (the planned
 * steps), one row per step (status, attempt number, due time) and one per
 * attempt (keyed by attempt id). `loadGoal` rebuilds the reducer's
 * `GoalState` from them; `commitTransition` writes a transition that plans
 * the goal (or changes its row alone) in one statement, failing with ABORTED
 * (and writing nothing) when another replica changed the goal first;
 * `prepareTransition` seals any transition that does not plan the goal for
 * `Store.updateGoals`, which saves several goals' transitions in one
 * statement, each under its own lock and its changed steps' versions.
 *
 * Each non-terminal step carries `next_attempt_at`, the earliest moment
 * something is due for it (a retry, an attempt timeout, a re-dispatch check,
 * a sub-goal check, the goal deadline); tickers on every replica claim due
 * steps with SKIP LOCKED, so timers survive any replica.
 *
 * @example
 * const loaded = await loadGoal(store.tenant(t), goalId);
 * const { state, commands } = reduceGoal(loaded.state, input);
 * const prepared = await prepareTransition(store, t, loaded, state, commands, Date.now());
 * const [goal] = await store.updateGoals([prepared!.update]);
 */
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type GoalEvent, GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { type Plan, PlanSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { encodeJson } from "../../lib/proto/json-encoder.js";
import type { AuditEventInput } from "../../lib/store/audit-log.js";
import type {
  ChainedWrites,
  GoalCreation,
  GoalUpdate,
  NewGoal,
} from "../../lib/store/goal-repository.js";
import type {
  AttemptRowState,
  NewPlan,
  NewStep,
  SealedStepChanges,
  StepChange,
  StepRowState,
} from "../../lib/store/plan-repository.js";
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
  attemptTimeoutAtMs,
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
    ...(goal.submittedBy ? { submittedBy: goal.submittedBy } : {}),
    ...(goal.submitterRoles?.length ? { submitterRoles: goal.submitterRoles } : {}),
    ...(goal.traceId && goal.traceSpanId
      ? { traceparent: `00-${goal.traceId}-${goal.traceSpanId}-01` }
      : {}),
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
    timeoutAtMs: attemptTimeoutAtMs(dispatchedAtMs, timeoutMs),
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
 * Writes `next` (reached from `loaded.state` by `commands`) in one statement:
 * the goal row with the transition's events (the optimistic lock every writer
 * of this goal takes: its version and its last event sequence), and chained
 * on it the plan, steps and attempts when the transition plans the goal. All
 * of it or nothing: ABORTED when another replica changed the goal first.
 * Returns the goal as now stored, so the caller need not load it again. A
 * transition that changes steps of a planned goal goes through
 * `prepareTransition` instead, whose batch guards each step's version.
 */
export async function commitTransition(
  store: Store,
  tenantId: string,
  loaded: LoadedGoal,
  next: GoalState,
  commands: readonly GoalCommand[],
  now: number,
  due: DueTimes = defaultDueTimes,
): Promise<LoadedGoal> {
  const tenant = store.tenant(tenantId);
  const before = loaded.state;
  const goalPatch = goalPatchOf(before, next);
  const events = eventsOf(commands);
  const versions = new Map(loaded.stepVersions);
  const planning = next.plan !== undefined && before.plan === undefined;
  let plan = loaded.plan;
  let ctes: ChainedWrites | undefined;
  if (planning) {
    plan = plannedPlan(commands);
    if (plan === undefined) throw new MeshError(Code.Internal, "planned without a plan");
    ctes = await plannedWrites(tenant, next, plan, now, due);
    for (const id of next.stepOrder) versions.set(id, 1);
  } else if (next.plan && next.stepOrder.some((id) => before.steps[id] !== next.steps[id])) {
    throw new MeshError(
      Code.Internal,
      "a transition changing steps is written by prepareTransition",
    );
  }
  const goal = await tenant.goals.update(loaded.goal.id, loaded.goal.version, goalPatch, {
    events,
    afterEventSeq: before.sequence,
    ...(ctes ? { ctes } : {}),
  });
  if (planning)
    rememberPlan(`${tenant.tenantId}/${next.plan!.planId}`, { plan: plan!, summary: next.plan! });
  return { goal, state: next, stepVersions: versions, plan };
}

/** The goal row's fields a transition from `before` to `next` sets. */
function goalPatchOf(before: GoalState, next: GoalState) {
  return {
    status: GoalStatus[next.status] as GoalStatusName,
    error: errorRecord(next.error),
    ...(next.output !== undefined ? { output: next.output } : {}),
    ...(next.plan ? { planId: next.plan.planId, strategy: next.plan.strategy } : {}),
    ...(next.finishedAtMs !== undefined && before.finishedAtMs === undefined
      ? { finishedAt: new Date(next.finishedAtMs) }
      : {}),
  };
}

/** A transition ready to be written with others (`Store.updateGoals`), and the goal it leaves. */
export interface PreparedTransition {
  update: GoalUpdate;
  /** The goal as loaded after the update stored `goal`. */
  saved(goal: GoalRecord): LoadedGoal;
}

/**
 * `commitTransition`'s writes for a transition that does not plan the goal
 * (it changes the goal row and steps of a planned goal, or ends an unplanned
 * one), sealed, to write together with other goals' transitions in one
 * statement, each under its own optimistic lock (`Store.updateGoals`:
 * ABORTED for this goal alone when it or a changed step moved on).
 * Undefined for a transition that plans the goal: `commitTransition` writes it.
 */
export async function prepareTransition(
  store: Store,
  tenantId: string,
  loaded: LoadedGoal,
  next: GoalState,
  commands: readonly GoalCommand[],
  now: number,
  due: DueTimes = defaultDueTimes,
): Promise<PreparedTransition | undefined> {
  const before = loaded.state;
  if (next.plan !== undefined && before.plan === undefined) return undefined;
  const tenant = store.tenant(tenantId);
  const versions = new Map(loaded.stepVersions);
  let steps: SealedStepChanges | undefined;
  if (next.plan) {
    const changed = next.stepOrder.filter((id) => before.steps[id] !== next.steps[id]);
    if (changed.length > 0) {
      const c = stepChanges(loaded, next, changed, now, due);
      steps = await tenant.plans.sealStepChanges(next.plan.planId, c.steps, c.added, c.moved);
      for (const id of changed) versions.set(id, (versions.get(id) ?? 1) + 1);
    }
  }
  const update = await tenant.goals.prepareUpdate(
    loaded.goal.id,
    loaded.goal.version,
    goalPatchOf(before, next),
    { events: eventsOf(commands), afterEventSeq: before.sequence, ...(steps ? { steps } : {}) },
  );
  return {
    update,
    saved: (goal) => ({ goal, state: next, stepVersions: versions, plan: loaded.plan }),
  };
}

/** The plan row, every step and every attempt of a goal the transition planned. */
function plannedWrites(
  tenant: TenantStore,
  next: GoalState,
  plan: Plan,
  now: number,
  due: DueTimes,
): Promise<ChainedWrites> {
  const rows = plannedRows(next, plan, now, due);
  return tenant.plans.plannedWrites(rows.plan, rows.steps, rows.attempts);
}

/** The plan row, steps and attempts of `next`, a goal planned with `plan`, as the store takes them. */
function plannedRows(
  next: GoalState,
  plan: Plan,
  now: number,
  due: DueTimes,
): { plan: NewPlan; steps: NewStep[]; attempts: AttemptRowState[] } {
  const steps: NewStep[] = plan.steps.map((s) => ({
    stepId: s.stepId,
    capability: s.capability || null,
    dependsOn: [...s.dependsOn],
    ...stepRow(next, next.steps[s.stepId]!, now, due),
  }));
  const attempts = plan.steps.flatMap((s) =>
    next.steps[s.stepId]!.attempts.map((a) => attemptRow(s.stepId, a, now)),
  );
  return {
    plan: {
      id: next.plan!.planId,
      goalId: next.goalId,
      goalKind: next.kind,
      strategy: next.plan!.strategy,
      outputStep: next.plan!.outputStep,
      parametersVersion: next.plan!.parametersVersion,
      rationale: plan.rationale,
      collaborative: next.plan!.collaborative,
      spec: encodeJson(PlanSchema, plan) as Record<string, JsonValue>,
    },
    steps,
    attempts,
  };
}

/**
 * A new goal to create in the state `next` its first transitions leave it in
 * (`initGoal`'s, and the `planned` one when its plan is known at submission),
 * with every event of `commands`, its plan, steps and attempts, and `audit`:
 * one statement stores what creating it and then committing the planned
 * transition would have (see `createdGoal`).
 */
export async function goalCreation(
  tenant: TenantStore,
  goal: NewGoal,
  next: GoalState,
  commands: readonly GoalCommand[],
  audit: AuditEventInput,
  now: number,
  due: DueTimes = defaultDueTimes,
): Promise<GoalCreation> {
  const plan = next.plan ? plannedPlan(commands) : undefined;
  if (next.plan && plan === undefined) throw new MeshError(Code.Internal, "planned without a plan");
  const rows = plan ? plannedRows(next, plan, now, due) : undefined;
  return tenant.goals.prepare(
    {
      ...goal,
      status: GoalStatus[next.status] as GoalStatusName,
      ...(next.plan ? { planId: next.plan.planId, strategy: next.plan.strategy } : {}),
      ...(next.output !== undefined ? { output: next.output } : {}),
      ...(next.error ? { error: errorRecord(next.error)! } : {}),
      ...(next.finishedAtMs !== undefined ? { finishedAt: new Date(next.finishedAtMs) } : {}),
    },
    eventsOf(commands),
    audit,
    rows && (await tenant.plans.sealPlanned(rows.plan, rows.steps, rows.attempts)),
  );
}

/** A goal `goalCreation` created, as loaded: the row as stored, its state `next` and its plan. */
export function createdGoal(goal: GoalRecord, next: GoalState, plan: Plan | undefined): LoadedGoal {
  const state = { ...next, createdAtMs: goal.createdAt.getTime() };
  if (plan && next.plan) {
    rememberPlan(`${goal.tenantId}/${next.plan.planId}`, { plan, summary: next.plan });
  }
  return { goal, state, stepVersions: new Map(next.stepOrder.map((id) => [id, 1])), plan };
}

/** The events a transition's commands emit, as stored. */
function eventsOf(commands: readonly GoalCommand[]) {
  return commands.flatMap((c) =>
    c.type === "emitEvent"
      ? [{ type: c.event.kind.case ?? "unknown", data: encodeJson(GoalEventSchema, c.event) }]
      : [],
  );
}

/** The `changed` steps' rows and the attempts the transition added or moved on. */
function stepChanges(
  loaded: LoadedGoal,
  next: GoalState,
  changed: readonly string[],
  now: number,
  due: DueTimes,
): { steps: StepChange[]; added: AttemptRowState[]; moved: AttemptRowState[] } {
  const steps: StepChange[] = [];
  const added: AttemptRowState[] = [];
  const moved: AttemptRowState[] = [];
  for (const id of changed) {
    const after = next.steps[id]!;
    steps.push({
      stepId: id,
      expectedVersion: loaded.stepVersions.get(id) ?? 1,
      ...stepRow(next, after, now, due),
    });
    // A changed step's attempts are copies: compare their status, not their identity.
    const old = new Map((loaded.state.steps[id]?.attempts ?? []).map((a) => [a.attemptId, a]));
    for (const a of after.attempts) {
      const was = old.get(a.attemptId);
      if (was === undefined) added.push(attemptRow(id, a, now));
      else if (
        (isAttemptOver(a) && !isAttemptOver(was)) ||
        (a.status === "running" && was.status === "dispatched")
      ) {
        moved.push(attemptRow(id, a, now));
      }
    }
  }
  return { steps, added, moved };
}

/** A step's row as `next` leaves it. */
function stepRow(next: GoalState, step: StepRuntime, now: number, due: DueTimes): StepRowState {
  return {
    status: StepStatus[step.status] as StepStatusName,
    attempts: step.attempt,
    output: step.status === StepStatus.SUCCEEDED ? (step.output ?? null) : null,
    error: errorRecord(step.error),
    agentIds: [...step.agentIds],
    childGoalId: step.childGoalId ?? null,
    nextAttemptAt: stepDueAt(next, step, now, due),
    startedAt: step.startedAtMs !== undefined ? new Date(step.startedAtMs) : null,
    finishedAt: step.finishedAtMs !== undefined ? new Date(step.finishedAtMs) : null,
  };
}

function isAttemptOver(a: AttemptRecord): boolean {
  return a.status !== "dispatched" && a.status !== "running";
}

/** An attempt's row as the transition leaves it. */
function attemptRow(stepId: string, a: AttemptRecord, now: number): AttemptRowState {
  return {
    attemptId: a.attemptId,
    stepId,
    attempt: a.attempt,
    replica: a.replica,
    outcome: attemptOutcome(a),
    agentId: a.agentId || null,
    output: a.output ?? null,
    error: errorRecord(a.error),
    cost: a.cost ?? null,
    startedAt: a.startedAtMs !== undefined ? new Date(a.startedAtMs) : null,
    finishedAt: isAttemptOver(a) ? new Date(a.finishedAtMs ?? now) : null,
  };
}

function attemptOutcome(a: AttemptRecord): AttemptOutcome {
  switch (a.status) {
    case "dispatched":
      return "DISPATCHED";
    case "running":
      return "RUNNING";
    case "succeeded":
      return "SUCCEEDED";
    case "cancelled":
      return "CANCELLED";
    case "failed":
      return a.error?.code === "TIMEOUT" ? "TIMED_OUT" : "FAILED";
  }
}

/** A stored event as the wire message. */
export function eventOf(data: JsonValue): GoalEvent {
  return fromJson(GoalEventSchema, data, { ignoreUnknownFields: true });
}
