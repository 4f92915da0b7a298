/**
 * A tenant's plans, their steps and the steps' attempts. Steps are rows with
 * an optimistic-lock version; attempts are keyed by `attemptId` (the job's
 * dedup id) so a result delivered twice is applied once.
 *
 * The executor writes them only with its goal's versioned update, so a
 * transition is one statement: `plannedWrites` chained on
 * `GoalRepository.update` when it plans the goal, `sealStepChanges` in a
 * `GoalRepository.prepareUpdate` (written by `updateGoals`) when it changes steps.
 *
 * @example
 * const plans = store.tenant(t).plans;
 * const steps = await plans.sealStepChanges(planId, [{ stepId: "fetch", expectedVersion: 2, status: "SUCCEEDED", ... }],
 *   [], [{ attemptId, stepId: "fetch", attempt: 1, replica: 0, outcome: "SUCCEEDED", output, ... }]);
 * const update = await store.tenant(t).goals.prepareUpdate(goalId, version, { status: "SUCCEEDED" }, { afterEventSeq, steps });
 * const [goal] = await store.updateGoals([update]);
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import { type Db, json, pgArray, requireText } from "./db.js";
import { PlanEntity, StepAttemptEntity, StepEntity } from "./entities.js";
import type { ChainedWrites } from "./goal-repository.js";
import type { PayloadCipher } from "./payload-cipher.js";
import { type PayloadColumn, payloadColumns } from "./payload-columns.js";
import {
  type AttemptOutcome,
  type ErrorRecord,
  type PlanRecord,
  type StepAttemptRecord,
  type StepRecord,
  type StepStatusName,
  stepStatuses,
} from "./records.js";

export interface NewPlan {
  id: string;
  goalId: string;
  goalKind: string;
  strategy: string;
  outputStep: string;
  parametersVersion?: string;
  rationale?: string;
  collaborative?: boolean;
  /** The whole plan as JSON. */
  spec: JsonObject;
}

/**
 * A plan, its steps and their attempts validated and sealed (`sealPlanned`),
 * as the JSON objects `insertPlannedOf` reads.
 */
export interface SealedPlanned {
  plan: NewPlan;
  planRow: Record<string, unknown>;
  steps: Record<string, unknown>[];
  attempts: Record<string, unknown>[];
}

/** A step's state as a transition leaves it; undefined fields take the defaults. */
export interface StepRowState {
  /** Default PENDING. */
  status?: StepStatusName;
  /** Number of the latest attempt. Default 0. */
  attempts?: number;
  output?: JsonValue | null;
  error?: ErrorRecord | null;
  /** Default none. */
  agentIds?: string[];
  childGoalId?: string | null;
  nextAttemptAt?: Date | null;
  startedAt?: Date | null;
  finishedAt?: Date | null;
}

/** A step of a new plan, in its state after the transition that plans it. */
export interface NewStep extends StepRowState {
  stepId: string;
  /** Null or absent for sub-goal steps. */
  capability?: string | null;
  dependsOn?: string[];
  /** The step as planned; default `{}`. */
  spec?: JsonObject;
}

/** A step a transition changes: its whole state replaces the row's. */
export interface StepChange extends StepRowState {
  stepId: string;
  /** The step's version the transition started from; the write needs the row still at it. */
  expectedVersion: number;
}

/** An attempt as a transition leaves it; undefined fields are null, a finished attempt's start defaults to its finish. */
export interface AttemptRowState {
  attemptId: string;
  stepId: string;
  /** From 1. */
  attempt: number;
  /** Default 0. */
  replica?: number;
  /** Default DISPATCHED. */
  outcome?: AttemptOutcome;
  agentId?: string | null;
  output?: JsonValue | null;
  error?: ErrorRecord | null;
  cost?: number | null;
  startedAt?: Date | null;
  finishedAt?: Date | null;
}

/** A transition's step writes, sealed (`PlanRepository.sealStepChanges`). */
export interface SealedStepChanges {
  planId: string;
  /** @internal rows as `jsonb_to_recordset` reads them. */
  steps: Record<string, unknown>[];
  /** @internal */
  added: Record<string, unknown>[];
  /** @internal */
  moved: Record<string, unknown>[];
}

export class PlanRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
    private readonly cipher: PayloadCipher,
  ) {}

  /**
   * CTEs for `GoalRepository.update(..., { ctes })`: the goal's plan, its
   * steps and their attempts in their state after the planning transition,
   * all written by the goal's versioned update statement (so only if it
   * applies). Step rows start at version 1.
   */
  async plannedWrites(
    input: NewPlan,
    steps: NewStep[],
    attempts: AttemptRowState[],
  ): Promise<ChainedWrites> {
    const sealed = await this.sealPlanned(input, steps, attempts);
    return {
      sql: `plan_row as (
           insert into plans (id, tenant_id, goal_id, goal_kind, strategy, output_step,
             parameters_version, rationale, collaborative, spec)
           select ?, g.tenant_id, g.id, ?, ?, ?, ?, ?, ?, ?::jsonb from g
           returning id, tenant_id, goal_id),
         step_rows as (
           ${insertSteps("plan_row")}
           returning plan_id, step_id, tenant_id, goal_id)${
             attempts.length > 0 ? `, attempt_rows as (${insertAttempts("step_rows")})` : ""
           }`,
      params: [
        input.id,
        ...planValues(sealed.plan),
        json(sealed.steps),
        ...(attempts.length > 0 ? [json(sealed.attempts)] : []),
      ],
    };
  }

  /**
   * A goal's plan, its steps and their attempts (as the transition that
   * plans it leaves them) validated and sealed, as the rows
   * `insertPlannedOf` writes with a goal that is created planned.
   */
  async sealPlanned(
    input: NewPlan,
    steps: NewStep[],
    attempts: AttemptRowState[],
  ): Promise<SealedPlanned> {
    checkPlan(input, steps);
    const c = payloadColumns;
    const sealed: NewPlan = {
      ...input,
      // Sealed whole (`all`), the rationale is kept only inside the sealed spec.
      rationale: (await this.cipher.sealsWhole(this.tenantId, c.planRationale))
        ? ""
        : input.rationale,
      spec: (await this.cipher.sealPayload(this.tenantId, c.planSpec, input.spec)) as JsonObject,
    };
    const sealedSteps = await Promise.all(
      steps.map(async (s) => ({
        ...(await this.#sealState(s)),
        spec: (await this.cipher.sealPayload(
          this.tenantId,
          c.stepSpec,
          s.spec ?? {},
        )) as JsonObject,
      })),
    );
    const sealedAttempts = await this.#sealAttempts(attempts);
    const [goalKind, strategy, outputStep, parametersVersion, rationale, collaborative] =
      planValues(sealed);
    return {
      plan: sealed,
      planRow: {
        id: input.id,
        goal_kind: goalKind,
        strategy,
        output_step: outputStep,
        parameters_version: parametersVersion,
        rationale,
        collaborative,
        spec: sealed.spec,
      },
      steps: stepsRows(sealedSteps, (s, position) => ({
        position,
        capability: s.capability ?? null,
        depends_on: s.dependsOn ?? [],
        spec: s.spec,
      })),
      attempts: attemptsRows(sealedAttempts),
    };
  }

  /**
   * A transition's changed steps (each with its `expectedVersion`), the
   * attempts it added and the attempts it moved on, validated and sealed, as
   * the rows `GoalRepository.prepareUpdate` writes in a batch of transitions
   * (`StoreTransaction.updateGoals`).
   */
  async sealStepChanges(
    planId: string,
    changed: StepChange[],
    newAttempts: AttemptRowState[],
    movedAttempts: AttemptRowState[],
  ): Promise<SealedStepChanges> {
    requireText(planId, "plan id");
    for (const step of changed) {
      requireText(step.stepId, "step id", 128);
      if (step.status) checkStepStatus(step.status);
    }
    const [steps, added, moved] = await Promise.all([
      Promise.all(changed.map((s) => this.#sealState(s))),
      this.#sealAttempts(newAttempts),
      this.#sealAttempts(movedAttempts),
    ]);
    return {
      planId,
      steps: stepsRows(steps, (s) => ({ expected_version: s.expectedVersion })),
      added: attemptsRows(added),
      moved: attemptsRows(moved),
    };
  }

  /** The plan, or NOT_FOUND. */
  async get(planId: string): Promise<PlanRecord> {
    const [plan] = await this.db.mapped<PlanRecord>(
      PlanEntity,
      "select * from plans where tenant_id = ? and id = ?",
      [this.tenantId, planId],
    );
    if (!plan) throw new MeshError(Code.NotFound, `plan ${planId} not found`);
    return this.#openPlan(plan);
  }

  /** The newest plan of a goal, or undefined before planning. */
  async latestForGoal(goalId: string): Promise<PlanRecord | undefined> {
    const [plan] = await this.db.mapped<PlanRecord>(
      PlanEntity,
      "select * from plans where tenant_id = ? and goal_id = ? order by created_at desc, id desc limit 1",
      [this.tenantId, goalId],
    );
    return plan && this.#openPlan(plan);
  }

  /** The plan's steps in plan order. */
  async steps(planId: string): Promise<StepRecord[]> {
    return this.#openSteps(
      await this.db.mapped<StepRecord>(
        StepEntity,
        "select * from steps where tenant_id = ? and plan_id = ? order by position",
        [this.tenantId, planId],
      ),
    );
  }

  /** The steps of the goal's current plan (`goals.plan_id`); empty before planning. */
  async stepsOfGoal(goalId: string): Promise<StepRecord[]> {
    return this.#openSteps(
      await this.db.mapped<StepRecord>(
        StepEntity,
        `select s.* from steps s join goals g on g.plan_id = s.plan_id and g.tenant_id = s.tenant_id
       where g.tenant_id = ? and g.id = ? order by s.position`,
        [this.tenantId, goalId],
      ),
    );
  }

  /** One step, or NOT_FOUND. */
  async getStep(planId: string, stepId: string): Promise<StepRecord> {
    const [step] = await this.db.mapped<StepRecord>(
      StepEntity,
      "select * from steps where tenant_id = ? and plan_id = ? and step_id = ?",
      [this.tenantId, planId, stepId],
    );
    if (!step) throw new MeshError(Code.NotFound, `step ${stepId} of plan ${planId} not found`);
    return (await this.#openSteps([step]))[0]!;
  }

  /**
   * Gives back a step this owner claimed (`WorkQueue.claimDueSteps`), due next
   * at `nextAttemptAt`. False when the lease is no longer this owner's: a
   * transition (which clears the lease and sets the due time) or another
   * replica got to the step meanwhile.
   */
  async releaseStep(
    planId: string,
    stepId: string,
    owner: string,
    nextAttemptAt: Date | null,
  ): Promise<boolean> {
    const rows = await this.db.rows(
      `update steps set next_attempt_at = ?, lease_owner = null, lease_expires_at = null,
         version = version + 1, updated_at = now()
       where tenant_id = ? and plan_id = ? and step_id = ? and lease_owner = ?
       returning step_id`,
      [nextAttemptAt, this.tenantId, planId, stepId, owner],
    );
    return rows.length > 0;
  }

  /** Attempts of a step, by attempt number and replica. */
  async attempts(planId: string, stepId: string): Promise<StepAttemptRecord[]> {
    return this.#openAttempts(
      await this.db.mapped<StepAttemptRecord>(
        StepAttemptEntity,
        `select * from step_attempts where tenant_id = ? and plan_id = ? and step_id = ?
       order by attempt, replica, dispatched_at`,
        [this.tenantId, planId, stepId],
      ),
    );
  }

  /** The steps of several plans, by plan and plan order. */
  async stepsOfPlans(planIds: readonly string[]): Promise<StepRecord[]> {
    if (planIds.length === 0) return [];
    return this.#openSteps(
      await this.db.mapped<StepRecord>(
        StepEntity,
        "select * from steps where tenant_id = ? and plan_id = any(?::text[]) order by plan_id, position",
        [this.tenantId, pgArray(planIds)],
      ),
    );
  }

  /** Attempts of every step of several plans, by plan, step, attempt number and replica. */
  async attemptsOfPlans(planIds: readonly string[]): Promise<StepAttemptRecord[]> {
    if (planIds.length === 0) return [];
    return this.#openAttempts(
      await this.db.mapped<StepAttemptRecord>(
        StepAttemptEntity,
        `select * from step_attempts where tenant_id = ? and plan_id = any(?::text[])
       order by plan_id, step_id, attempt, replica, dispatched_at`,
        [this.tenantId, pgArray(planIds)],
      ),
    );
  }

  /** A plan row as stored, opened (its rationale from the spec when only the sealed spec kept it). */
  async #openPlan(plan: PlanRecord): Promise<PlanRecord> {
    const spec = await this.cipher.openPayload(this.tenantId, payloadColumns.planSpec, plan.spec);
    if (spec === plan.spec) return plan;
    const rationale = plan.rationale || (typeof spec.rationale === "string" ? spec.rationale : "");
    return { ...plan, spec, rationale };
  }

  #openSteps(rows: StepRecord[]): Promise<StepRecord[]> {
    return openSteps(this.cipher, rows);
  }

  #openAttempts(rows: StepAttemptRecord[]): Promise<StepAttemptRecord[]> {
    return Promise.all(
      rows.map(async (r) => ({
        ...r,
        output: await this.cipher.openPayload(
          this.tenantId,
          payloadColumns.attemptOutput,
          r.output,
        ),
        error: await openError(this.cipher, this.tenantId, payloadColumns.attemptError, r.error),
      })),
    );
  }

  /** A step's state as the tenant's mode stores it. */
  async #sealState<T extends StepRowState>(step: T): Promise<T> {
    const c = payloadColumns;
    return {
      ...step,
      output: await this.cipher.sealPayload(this.tenantId, c.stepOutput, step.output ?? null),
      error: await this.#sealError(c.stepError, step.error),
    };
  }

  /** Attempts as the tenant's mode stores them. */
  #sealAttempts(attempts: readonly AttemptRowState[]): Promise<AttemptRowState[]> {
    const c = payloadColumns;
    return Promise.all(
      attempts.map(async (a) => ({
        ...a,
        output: await this.cipher.sealPayload(this.tenantId, c.attemptOutput, a.output ?? null),
        error: await this.#sealError(c.attemptError, a.error),
      })),
    );
  }

  async #sealError(column: PayloadColumn, error: ErrorRecord | null | undefined) {
    if (!error) return null;
    return (await this.cipher.sealPayload(
      this.tenantId,
      column,
      error as unknown as JsonValue,
    )) as unknown as ErrorRecord;
  }
}

/** Step rows as stored (of any tenants), opened. @internal */
export function openSteps(cipher: PayloadCipher, rows: StepRecord[]): Promise<StepRecord[]> {
  const c = payloadColumns;
  return Promise.all(
    rows.map(async (r) => ({
      ...r,
      spec: await cipher.openPayload(r.tenantId, c.stepSpec, r.spec),
      output: await cipher.openPayload(r.tenantId, c.stepOutput, r.output),
      error: await openError(cipher, r.tenantId, c.stepError, r.error),
    })),
  );
}

async function openError(
  cipher: PayloadCipher,
  tenantId: string,
  column: PayloadColumn,
  error: ErrorRecord | null,
): Promise<ErrorRecord | null> {
  const opened = await cipher.openPayload(tenantId, column, error as unknown as JsonValue);
  return opened as unknown as ErrorRecord | null;
}

/**
 * CTEs writing the plans of goals created in one statement (see
 * `createGoals`): `plan_row`, `step_rows` and `attempt_rows` of every goal of
 * `goals` (the inserted goal rows) whose item in `items` (joined on `id`)
 * has a `plan` (`SealedPlanned.planRow`) with its `steps` and `attempts`.
 * @internal
 */
export function insertPlannedOf(goals: string, items: string): string {
  return `plan_row as (
      insert into plans (id, tenant_id, goal_id, goal_kind, strategy, output_step,
        parameters_version, rationale, collaborative, spec)
      select p.id, g.tenant_id, g.id, p.goal_kind, p.strategy, p.output_step,
        p.parameters_version, coalesce(p.rationale, ''), coalesce(p.collaborative, false), p.spec
      from ${goals} g join ${items} i on i.id = g.id and i.tenant_id = g.tenant_id,
        jsonb_to_record(i.plan) as p(id text, goal_kind text, strategy text, output_step text,
          parameters_version text, rationale text, collaborative boolean, spec jsonb)
      where i.plan is not null
      returning id, tenant_id, goal_id),
    step_rows as (
      insert into steps (plan_id, step_id, tenant_id, goal_id, position, capability, depends_on,
        spec, status, attempts, output, error, agent_ids, child_goal_id, next_attempt_at,
        started_at, finished_at)
      select p.id, x.step_id, p.tenant_id, p.goal_id, x.position, x.capability, x.depends_on,
        coalesce(x.spec, '{}'::jsonb), x.status, x.attempts, x.output, x.error, x.agent_ids,
        x.child_goal_id, x.next_attempt_at, x.started_at, x.finished_at
      from plan_row p join ${items} i on i.id = p.goal_id and i.tenant_id = p.tenant_id,
        jsonb_to_recordset(i.steps) as x(${stepRecordColumns},
          position int, capability text, depends_on text[], spec jsonb)
      returning plan_id, step_id, tenant_id, goal_id),
    attempt_rows as (
      insert into step_attempts (attempt_id, tenant_id, goal_id, plan_id, step_id, attempt,
        replica, outcome, agent_id, output, error, cost, started_at, finished_at)
      select x.attempt_id, s.tenant_id, s.goal_id, s.plan_id, s.step_id, x.attempt, x.replica,
        x.outcome, x.agent_id, x.output, x.error, x.cost,
        coalesce(x.started_at, x.finished_at), x.finished_at
      from step_rows s join ${items} i on i.id = s.goal_id and i.tenant_id = s.tenant_id,
        jsonb_to_recordset(i.attempts) as x(${attemptRecordColumns})
      where x.step_id = s.step_id
      on conflict (attempt_id) do nothing)`;
}

function checkPlan(input: NewPlan, steps: readonly NewStep[]): void {
  requireText(input.id, "plan id", 128);
  requireText(input.goalId, "goal id");
  requireText(input.strategy, "strategy", 128);
  const ids = new Set<string>();
  for (const step of steps) {
    requireText(step.stepId, "step id", 128);
    if (ids.has(step.stepId)) {
      throw new MeshError(Code.InvalidArgument, `duplicate step id ${step.stepId}`);
    }
    ids.add(step.stepId);
    if (step.status) checkStepStatus(step.status);
  }
}

/** The plan's columns after id, tenant and goal, in `insert into plans` order. */
function planValues(input: NewPlan): unknown[] {
  return [
    input.goalKind,
    input.strategy,
    input.outputStep,
    input.parametersVersion || null,
    input.rationale ?? "",
    input.collaborative ?? false,
    json(input.spec),
  ];
}

/** The `jsonb_to_recordset` columns of `stepsRows`' state of a step. @internal */
export const stepRecordColumns = `step_id text, status text, attempts int, output jsonb, error jsonb,
  agent_ids text[], child_goal_id text, next_attempt_at timestamptz, started_at timestamptz,
  finished_at timestamptz`;

/** `insert into steps ... select` from `plan` (a relation with id, tenant_id, goal_id) and one `?` of `stepsRows` as JSON. */
function insertSteps(plan: string): string {
  return `insert into steps (plan_id, step_id, tenant_id, goal_id, position, capability, depends_on,
           spec, status, attempts, output, error, agent_ids, child_goal_id, next_attempt_at,
           started_at, finished_at)
         select p.id, x.step_id, p.tenant_id, p.goal_id, x.position, x.capability, x.depends_on,
           coalesce(x.spec, '{}'::jsonb), x.status, x.attempts, x.output, x.error, x.agent_ids,
           x.child_goal_id, x.next_attempt_at, x.started_at, x.finished_at
         from ${plan} as p, jsonb_to_recordset(?::jsonb) as x(${stepRecordColumns},
           position int, capability text, depends_on text[], spec jsonb)`;
}

/**
 * Steps as `jsonb_to_recordset` objects: their state (a JSON null output
 * reads back as null, like the SQL NULL it becomes) and the columns `more` adds.
 */
function stepsRows<T extends StepRowState & { stepId: string }>(
  steps: readonly T[],
  more: (step: T, position: number) => Record<string, unknown>,
): Record<string, unknown>[] {
  return steps.map((s, position) => ({
    step_id: s.stepId,
    status: s.status ?? "PENDING",
    attempts: s.attempts ?? 0,
    output: s.output ?? null,
    error: s.error ?? null,
    agent_ids: s.agentIds ?? [],
    child_goal_id: s.childGoalId ?? null,
    next_attempt_at: s.nextAttemptAt?.toISOString() ?? null,
    started_at: s.startedAt?.toISOString() ?? null,
    finished_at: s.finishedAt?.toISOString() ?? null,
    ...more(s, position),
  }));
}

/** The `jsonb_to_recordset` columns of `attemptsRows`. @internal */
export const attemptRecordColumns = `attempt_id text, step_id text, attempt int, replica int,
  outcome text, agent_id text, output jsonb, error jsonb, cost double precision,
  started_at timestamptz, finished_at timestamptz`;

/** `insert into step_attempts ... select` the attempts of one `?` of `attemptsRows` as JSON whose step is in `steps` (plan_id, step_id, tenant_id, goal_id). */
function insertAttempts(steps: string): string {
  return `insert into step_attempts (attempt_id, tenant_id, goal_id, plan_id, step_id, attempt,
           replica, outcome, agent_id, output, error, cost, started_at, finished_at)
         select x.attempt_id, s.tenant_id, s.goal_id, s.plan_id, s.step_id, x.attempt, x.replica,
           x.outcome, x.agent_id, x.output, x.error, x.cost,
           coalesce(x.started_at, x.finished_at), x.finished_at
         from ${steps} s join jsonb_to_recordset(?::jsonb) as x(${attemptRecordColumns})
           on x.step_id = s.step_id
         on conflict (attempt_id) do nothing`;
}

/** Attempts as `jsonb_to_recordset` objects. */
function attemptsRows(attempts: readonly AttemptRowState[]): Record<string, unknown>[] {
  for (const a of attempts) {
    requireText(a.attemptId, "attempt id");
    if (!Number.isInteger(a.attempt) || a.attempt < 1) {
      throw new MeshError(Code.InvalidArgument, "attempt must be an integer from 1");
    }
  }
  return attempts.map((a) => ({
    attempt_id: a.attemptId,
    step_id: a.stepId,
    attempt: a.attempt,
    replica: a.replica ?? 0,
    outcome: a.outcome ?? "DISPATCHED",
    agent_id: a.agentId || null,
    output: a.output ?? null,
    error: a.error ?? null,
    cost: a.cost ?? null,
    started_at: a.startedAt?.toISOString() ?? null,
    finished_at: a.finishedAt?.toISOString() ?? null,
  }));
}

function checkStepStatus(status: string): void {
  if (!stepStatuses.includes(status as StepStatusName)) {
    throw new MeshError(Code.InvalidArgument, `invalid step status ${JSON.stringify(status)}`);
  }
}
