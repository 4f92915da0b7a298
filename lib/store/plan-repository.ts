/**
 * A tenant's plans, their steps and the steps' attempts. Steps are rows with
 * an optimistic-lock version; attempts are keyed by `attemptId` (the job's
 * dedup id) so a result delivered twice is applied once.
 *
 * @example
 * const plans = store.tenant(t).plans;
 * const { plan, steps } = await plans.create({ goalId, goalKind, strategy, outputStep, spec }, [
 *   { stepId: "fetch", capability: "http.fetch" },
 *   { stepId: "summarize", capability: "text.summarize", dependsOn: ["fetch"] },
 * ]);
 * await plans.updateStep(plan.id, "fetch", steps[0].version, { status: "DISPATCHED", attempts: 1 });
 * const { applied } = await plans.finishAttempt(attemptId, { outcome: "SUCCEEDED", output });
 */
import { randomUUID } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import { assignments, type Db, json, pgArray, requireText } from "./db.js";
import { PlanEntity, StepAttemptEntity, StepEntity } from "./entities.js";
import {
  type AttemptOutcome,
  type ErrorRecord,
  type PlanRecord,
  type StepAttemptRecord,
  type StepRecord,
  type StepStatusName,
  stepStatuses,
  terminalStepStatuses,
} from "./records.js";

export interface NewPlan {
  /** Default: a random UUID. */
  id?: string;
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

export interface NewStep {
  stepId: string;
  /** Null or absent for sub-goal steps. */
  capability?: string | null;
  dependsOn?: string[];
  /** The step as planned; default `{}`. */
  spec?: JsonObject;
  /** Default PENDING. */
  status?: StepStatusName;
  childGoalId?: string;
  /** State at creation, for a step dispatched by the transition that plans it. Default 0. */
  attempts?: number;
  /** Default none. */
  agentIds?: string[];
  nextAttemptAt?: Date | null;
  startedAt?: Date | null;
}

/** A first attempt written with its planned step (see `plannedWrites`). */
export interface PlannedAttempt {
  attemptId: string;
  stepId: string;
  attempt: number;
  replica?: number;
}

/** Fields a step update may change; undefined leaves a field alone, null clears it. */
export interface StepPatch {
  status?: StepStatusName;
  attempts?: number;
  output?: JsonValue | null;
  error?: ErrorRecord | null;
  agentIds?: string[];
  childGoalId?: string | null;
  nextAttemptAt?: Date | null;
  leaseOwner?: string | null;
  leaseExpiresAt?: Date | null;
  startedAt?: Date | null;
  /** Default: now when `status` becomes terminal. */
  finishedAt?: Date | null;
}

export interface NewAttempt {
  attemptId: string;
  planId: string;
  stepId: string;
  /** From 1. */
  attempt: number;
  /** Default 0. */
  replica?: number;
  agentId?: string;
}

export interface AttemptResult {
  outcome: Exclude<AttemptOutcome, "DISPATCHED" | "RUNNING">;
  output?: JsonValue;
  error?: ErrorRecord;
  agentId?: string;
  cost?: number;
  /** Default now. */
  finishedAt?: Date;
}

const stepColumns = {
  status: "status",
  attempts: "attempts",
  output: "output:jsonb",
  error: "error:jsonb",
  agentIds: "agent_ids:text[]",
  childGoalId: "child_goal_id",
  nextAttemptAt: "next_attempt_at",
  leaseOwner: "lease_owner",
  leaseExpiresAt: "lease_expires_at",
  startedAt: "started_at",
  finishedAt: "finished_at",
};

export class PlanRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
  ) {}

  /** Stores a plan and its steps in one transaction. NOT_FOUND if the goal is not the tenant's. */
  async create(
    input: NewPlan,
    steps: NewStep[],
  ): Promise<{ plan: PlanRecord; steps: StepRecord[] }> {
    const id = input.id ?? randomUUID();
    requireText(input.goalId, "goal id");
    checkPlan(input, steps);
    return this.db.transaction(async (db) => {
      const [plan] = await db.mapped<PlanRecord>(
        PlanEntity,
        `insert into plans (id, tenant_id, goal_id, goal_kind, strategy, output_step,
           parameters_version, rationale, collaborative, spec)
         select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb
         where exists (select 1 from goals where tenant_id = ? and id = ?)
         returning *`,
        [id, this.tenantId, input.goalId, ...planValues(input), this.tenantId, input.goalId],
      );
      if (!plan) throw new MeshError(Code.NotFound, `goal ${input.goalId} not found`);
      if (steps.length === 0) return { plan, steps: [] };
      // One multi-row insert returning the rows (versions included) for any number of steps.
      const rows = await db.mapped<StepRecord>(
        StepEntity,
        `${insertSteps("(select ?::text as id, ?::text as tenant_id, ?::text as goal_id)")}
         returning *`,
        [id, this.tenantId, input.goalId, stepsJson(steps)],
      );
      return { plan, steps: rows.sort((a, b) => a.position - b.position) };
    });
  }

  /**
   * CTEs for `GoalRepository.update(..., also)`: the goal's plan, its steps in
   * their state after the planning transition, and their first attempts, all
   * written by the goal's versioned update statement (so only if it applies).
   * Step rows start at version 1.
   */
  plannedWrites(
    input: NewPlan & { id: string },
    steps: NewStep[],
    attempts: PlannedAttempt[],
  ): { sql: string; params: unknown[] } {
    checkPlan(input, steps);
    for (const a of attempts) requireText(a.attemptId, "attempt id");
    return {
      sql: `plan_row as (
           insert into plans (id, tenant_id, goal_id, goal_kind, strategy, output_step,
             parameters_version, rationale, collaborative, spec)
           select ?, g.tenant_id, g.id, ?, ?, ?, ?, ?, ?, ?::jsonb from g
           returning id, tenant_id, goal_id),
         step_rows as (
           ${insertSteps("plan_row")}
           returning plan_id, step_id, tenant_id, goal_id),
         attempt_rows as (
           insert into step_attempts (attempt_id, tenant_id, goal_id, plan_id, step_id, attempt,
             replica, outcome)
           select x.attempt_id, s.tenant_id, s.goal_id, s.plan_id, s.step_id, x.attempt,
             x.replica, 'DISPATCHED'
           from step_rows s join jsonb_to_recordset(?::jsonb)
             as x(attempt_id text, step_id text, attempt int, replica int) on x.step_id = s.step_id
           on conflict (attempt_id) do nothing)`,
      params: [
        input.id,
        ...planValues(input),
        stepsJson(steps),
        json(
          attempts.map((a) => ({
            attempt_id: a.attemptId,
            step_id: a.stepId,
            attempt: a.attempt,
            replica: a.replica ?? 0,
          })),
        ),
      ],
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
    return plan;
  }

  /** The newest plan of a goal, or undefined before planning. */
  async latestForGoal(goalId: string): Promise<PlanRecord | undefined> {
    const [plan] = await this.db.mapped<PlanRecord>(
      PlanEntity,
      "select * from plans where tenant_id = ? and goal_id = ? order by created_at desc, id desc limit 1",
      [this.tenantId, goalId],
    );
    return plan;
  }

  /** The plan's steps in plan order. */
  async steps(planId: string): Promise<StepRecord[]> {
    return this.#steps(this.db, planId);
  }

  /** The steps of the goal's current plan (`goals.plan_id`); empty before planning. */
  async stepsOfGoal(goalId: string): Promise<StepRecord[]> {
    return this.db.mapped<StepRecord>(
      StepEntity,
      `select s.* from steps s join goals g on g.plan_id = s.plan_id and g.tenant_id = s.tenant_id
       where g.tenant_id = ? and g.id = ? order by s.position`,
      [this.tenantId, goalId],
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
    return step;
  }

  /** Applies `patch` if the step is still at `expectedVersion`; ABORTED otherwise. */
  async updateStep(
    planId: string,
    stepId: string,
    expectedVersion: number,
    patch: StepPatch,
  ): Promise<StepRecord> {
    if (patch.status !== undefined) checkStepStatus(patch.status);
    const effective = { ...patch };
    if (patch.status && terminalStepStatuses.includes(patch.status) && !patch.finishedAt) {
      effective.finishedAt = new Date();
    }
    const set = assignments(effective, stepColumns);
    const [row] = await this.db.mapped<StepRecord>(
      StepEntity,
      `update steps set ${[...set.sql, "version = version + 1", "updated_at = now()"].join(", ")}
       where tenant_id = ? and plan_id = ? and step_id = ? and version = ? returning *`,
      [...set.params, this.tenantId, planId, stepId, expectedVersion],
    );
    if (row) return row;
    const current = await this.getStep(planId, stepId);
    throw new MeshError(
      Code.Aborted,
      `step ${stepId} was changed concurrently (expected version ${expectedVersion}, found ${current.version})`,
      { details: { planId, stepId, expectedVersion, actualVersion: current.version } },
    );
  }

  /** Records a dispatched attempt; a repeated `attemptId` returns the stored one with `created: false`. */
  async addAttempt(input: NewAttempt): Promise<{ attempt: StepAttemptRecord; created: boolean }> {
    requireText(input.attemptId, "attempt id");
    if (!Number.isInteger(input.attempt) || input.attempt < 1) {
      throw new MeshError(Code.InvalidArgument, "attempt must be an integer from 1");
    }
    const [row] = await this.db.mapped<StepAttemptRecord>(
      StepAttemptEntity,
      `insert into step_attempts (attempt_id, tenant_id, goal_id, plan_id, step_id, attempt, replica, agent_id, outcome)
       select ?, s.tenant_id, s.goal_id, s.plan_id, s.step_id, ?, ?, ?, 'DISPATCHED'
       from steps s where s.tenant_id = ? and s.plan_id = ? and s.step_id = ?
       on conflict (attempt_id) do nothing
       returning *`,
      [
        input.attemptId,
        input.attempt,
        input.replica ?? 0,
        input.agentId ?? null,
        this.tenantId,
        input.planId,
        input.stepId,
      ],
    );
    if (row) return { attempt: row, created: true };
    const existing = await this.findAttempt(input.attemptId);
    if (!existing) {
      throw new MeshError(Code.NotFound, `step ${input.stepId} of plan ${input.planId} not found`);
    }
    return { attempt: existing, created: false };
  }

  /** The attempt, or undefined. */
  async findAttempt(attemptId: string): Promise<StepAttemptRecord | undefined> {
    const [row] = await this.db.mapped<StepAttemptRecord>(
      StepAttemptEntity,
      "select * from step_attempts where tenant_id = ? and attempt_id = ?",
      [this.tenantId, attemptId],
    );
    return row;
  }

  /** Marks an attempt as started by an agent; `applied: false` if it had already started or finished. */
  async startAttempt(
    attemptId: string,
    agentId: string,
    startedAt: Date = new Date(),
  ): Promise<{ attempt: StepAttemptRecord; applied: boolean }> {
    return this.#transitionAttempt(
      attemptId,
      "outcome = 'RUNNING', agent_id = ?, started_at = ?",
      [agentId, startedAt],
      "outcome = 'DISPATCHED'",
    );
  }

  /**
   * Records an attempt's result once: `applied: false` when a result was
   * already recorded (a redelivered job), so the caller skips its side effects.
   */
  async finishAttempt(
    attemptId: string,
    result: AttemptResult,
  ): Promise<{ attempt: StepAttemptRecord; applied: boolean }> {
    const outcomes = ["SUCCEEDED", "FAILED", "TIMED_OUT", "CANCELLED"];
    if (!outcomes.includes(result.outcome)) {
      throw new MeshError(Code.InvalidArgument, `invalid attempt outcome ${result.outcome}`);
    }
    return this.#transitionAttempt(
      attemptId,
      `outcome = ?, output = ?::jsonb, error = ?::jsonb, cost = ?, finished_at = ?,
       agent_id = coalesce(?, agent_id), started_at = coalesce(started_at, ?)`,
      [
        result.outcome,
        result.output === undefined ? null : json(result.output),
        result.error === undefined ? null : json(result.error),
        result.cost ?? null,
        result.finishedAt ?? new Date(),
        result.agentId ?? null,
        result.finishedAt ?? new Date(),
      ],
      "finished_at is null",
    );
  }

  /** Attempts of a step, by attempt number and replica. */
  async attempts(planId: string, stepId: string): Promise<StepAttemptRecord[]> {
    return this.db.mapped<StepAttemptRecord>(
      StepAttemptEntity,
      `select * from step_attempts where tenant_id = ? and plan_id = ? and step_id = ?
       order by attempt, replica, dispatched_at`,
      [this.tenantId, planId, stepId],
    );
  }

  /** The steps of several plans, by plan and plan order. */
  async stepsOfPlans(planIds: readonly string[]): Promise<StepRecord[]> {
    if (planIds.length === 0) return [];
    return this.db.mapped<StepRecord>(
      StepEntity,
      "select * from steps where tenant_id = ? and plan_id = any(?::text[]) order by plan_id, position",
      [this.tenantId, pgArray(planIds)],
    );
  }

  /** Attempts of every step of several plans, by plan, step, attempt number and replica. */
  async attemptsOfPlans(planIds: readonly string[]): Promise<StepAttemptRecord[]> {
    if (planIds.length === 0) return [];
    return this.db.mapped<StepAttemptRecord>(
      StepAttemptEntity,
      `select * from step_attempts where tenant_id = ? and plan_id = any(?::text[])
       order by plan_id, step_id, attempt, replica, dispatched_at`,
      [this.tenantId, pgArray(planIds)],
    );
  }

  async #transitionAttempt(
    attemptId: string,
    set: string,
    params: unknown[],
    guard: string,
  ): Promise<{ attempt: StepAttemptRecord; applied: boolean }> {
    requireText(attemptId, "attempt id");
    const [row] = await this.db.mapped<StepAttemptRecord>(
      StepAttemptEntity,
      `update step_attempts set ${set} where tenant_id = ? and attempt_id = ? and ${guard} returning *`,
      [...params, this.tenantId, attemptId],
    );
    if (row) return { attempt: row, applied: true };
    const existing = await this.findAttempt(attemptId);
    if (!existing) throw new MeshError(Code.NotFound, `attempt ${attemptId} not found`);
    return { attempt: existing, applied: false };
  }

  #steps(db: Db, planId: string): Promise<StepRecord[]> {
    return db.mapped<StepRecord>(
      StepEntity,
      "select * from steps where tenant_id = ? and plan_id = ? order by position",
      [this.tenantId, planId],
    );
  }
}

function checkPlan(input: NewPlan, steps: readonly NewStep[]): void {
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

/** `insert into steps ... select` from `plan` (a relation with id, tenant_id, goal_id) and one `?` of `stepsJson`. */
function insertSteps(plan: string): string {
  return `insert into steps (plan_id, step_id, tenant_id, goal_id, position, capability, status,
           attempts, depends_on, spec, agent_ids, child_goal_id, next_attempt_at, started_at)
         select p.id, x.step_id, p.tenant_id, p.goal_id, x.position, x.capability, x.status,
           x.attempts, x.depends_on, coalesce(x.spec, '{}'::jsonb), x.agent_ids, x.child_goal_id,
           x.next_attempt_at, x.started_at
         from ${plan} as p, jsonb_to_recordset(?::jsonb) as x(step_id text, position int,
           capability text, status text, attempts int, depends_on text[], spec jsonb,
           agent_ids text[], child_goal_id text, next_attempt_at timestamptz, started_at timestamptz)`;
}

function stepsJson(steps: readonly NewStep[]): string {
  return json(
    steps.map((s, position) => ({
      step_id: s.stepId,
      position,
      capability: s.capability ?? null,
      status: s.status ?? "PENDING",
      attempts: s.attempts ?? 0,
      depends_on: s.dependsOn ?? [],
      spec: s.spec ?? {},
      agent_ids: s.agentIds ?? [],
      child_goal_id: s.childGoalId ?? null,
      next_attempt_at: s.nextAttemptAt?.toISOString() ?? null,
      started_at: s.startedAt?.toISOString() ?? null,
    })),
  );
}

function checkStepStatus(status: string): void {
  if (!stepStatuses.includes(status as StepStatusName)) {
    throw new MeshError(Code.InvalidArgument, `invalid step status ${JSON.stringify(status)}`);
  }
}
