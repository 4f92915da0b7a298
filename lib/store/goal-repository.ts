/**
 * A tenant's goals. Creation is idempotent per `(tenant, idempotencyKey)`;
 * updates are optimistic (`expectedVersion`) and fail with ABORTED when
 * another replica changed the goal first.
 *
 * @example
 * const goals = store.tenant("acme").goals;
 * const { goal, created } = await goals.create({ kind: "summarize", input, idempotencyKey });
 * await goals.update(goal.id, goal.version, { status: "PLANNING" });
 */
import { randomUUID } from "node:crypto";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import { type AuditEventInput, auditAppendMany, auditParts, auditPartsJson } from "./audit-log.js";
import {
  assignments,
  constraintOf,
  type Db,
  decodeToken,
  encodeToken,
  json,
  pageSize,
  pgArray,
  requireText,
} from "./db.js";
import { GoalEntity } from "./entities.js";
import { insertEvents, type NewGoalEvent } from "./goal-event-repository.js";
import { openGoal, type PayloadCipher, sealEvents } from "./payload-cipher.js";
import { payloadColumns } from "./payload-columns.js";
import {
  attemptRecordColumns,
  insertPlannedOf,
  type SealedPlanned,
  type SealedStepChanges,
  stepRecordColumns,
} from "./plan-repository.js";
import {
  type ErrorRecord,
  type GoalRecord,
  type GoalStatusName,
  goalStatuses,
  terminalGoalStatuses,
} from "./records.js";
import { isUnavailable } from "./store-error.js";

export interface NewGoal {
  /** Default: a random UUID. */
  id?: string;
  kind: string;
  /** Default `{}`. */
  input?: JsonObject;
  /** Empty or absent means none. */
  idempotencyKey?: string;
  /** Default 0. */
  priority?: number;
  deadline?: Date | null;
  labels?: Record<string, string>;
  /** Strategy the client asked for. */
  requestedStrategy?: string;
  parentGoalId?: string;
  parentStepId?: string;
  traceId?: string;
  /** The span the goal's trace continues from (16 hex digits). */
  traceSpanId?: string;
  /** Who the goal acts for (`GoalRecord.submittedBy`). */
  submittedBy?: string;
  /** The roles of the principal the goal acts for, at submission. */
  submitterRoles?: string[];
  /** Default PENDING. */
  status?: GoalStatusName;
  /**
   * The state a goal is created in when the transition that creates it also
   * planned (or ended) it: its plan and strategy, its output or error, when it
   * finished. Default none.
   */
  planId?: string;
  strategy?: string;
  output?: JsonValue;
  error?: ErrorRecord;
  finishedAt?: Date;
}

/**
 * A goal ready to be created: validated, its payloads sealed, with its first
 * events, its plan (if created planned) and its audit record. From
 * `GoalRepository.prepare`; created by `GoalRepository.create` or, with
 * others of any tenant in one statement, by `StoreTransaction.createGoals`.
 */
export interface GoalCreation {
  readonly tenantId: string;
  readonly id: string;
  readonly idempotencyKey: string | null;
  /** @internal the goal's item of the creation statement. */
  readonly item: Record<string, unknown>;
}

/** What creating a goal did: created it, or found the goal with its idempotency key. */
export interface GoalCreated {
  goal: GoalRecord;
  created: boolean;
}

/** Fields an update may change; undefined leaves a field alone, null clears it. */
export interface GoalPatch {
  status?: GoalStatusName;
  output?: JsonValue | null;
  error?: ErrorRecord | null;
  planId?: string | null;
  strategy?: string | null;
  deadline?: Date | null;
  /** Default: now when `status` becomes terminal. */
  finishedAt?: Date | null;
  leaseOwner?: string | null;
  leaseExpiresAt?: Date | null;
  traceId?: string | null;
}

/** What a goal update writes besides the row, in the same statement. */
export interface GoalUpdateWrites {
  /** Appended with the goal's next sequences. */
  events?: readonly NewGoalEvent[];
  /** Apply only if the goal's last event sequence is still this (nothing appended meanwhile). */
  afterEventSeq?: number;
  /** More writes chained on the goal's, e.g. `PlanRepository.plannedWrites`. */
  ctes?: ChainedWrites;
}

/**
 * Data-modifying CTEs that read the updated goal row from `g`, so they run
 * only when the goal's update applies, and after it has locked the goal row.
 */
export interface ChainedWrites {
  /** `name as (...)` CTEs, comma-separated. */
  sql: string;
  params: unknown[];
}

/**
 * A goal update ready to be written with others (of any tenants) in one
 * statement: from `GoalRepository.prepareUpdate`, written by
 * `StoreTransaction.updateGoals`.
 */
export interface GoalUpdate {
  readonly tenantId: string;
  readonly id: string;
  readonly expectedVersion: number;
  /** @internal the goal's item of the update statement. */
  readonly item: Record<string, unknown>;
}

/** What a batched goal update writes besides the row (see `GoalUpdateWrites`). */
export interface GoalBatchWrites {
  /** Appended with the goal's next sequences. */
  events?: readonly NewGoalEvent[];
  /** Apply only if the goal's last event sequence is still this. */
  afterEventSeq: number;
  /** Changed steps (each only at its expected version) and their attempts. */
  steps?: SealedStepChanges;
}

export interface ListGoalsOptions {
  /** Only these statuses; empty or absent for all. */
  statuses?: GoalStatusName[];
  kind?: string;
  /** Only sub-goals of this goal. */
  parentGoalId?: string;
  /** Only the goal submitted with this idempotency key. */
  idempotencyKey?: string;
  /** Only goals created at or after this time. */
  createdAfter?: Date;
  /** Only goals created before this time. */
  createdBefore?: Date;
  /** 0 or absent means 50; at most 500. */
  pageSize?: number;
  pageToken?: string;
  /**
   * Bytes of input, output and error (as JSON text) a page holds at most; a
   * page always holds at least one goal. Default `listGoalsMaxBytes`.
   */
  maxBytes?: number;
}

/**
 * A page's default byte budget. A goal's `Struct`s are at most about 4.5 times
 * their JSON text as PostgreSQL renders it ("1, " is 3 bytes, 13 as a protobuf
 * `Value` in a list), so a page of this many bytes stays far under gRPC's
 * 4 MiB message limit however its goals are shaped, and a tenant with large
 * goals can still list them.
 */
export const listGoalsMaxBytes = 256 * 1024;

export interface GoalPage {
  /** Newest first. */
  goals: GoalRecord[];
  /** Empty on the last page. */
  nextPageToken: string;
}

const patchColumns = {
  status: "status",
  output: "output:jsonb",
  error: "error:jsonb",
  planId: "plan_id",
  strategy: "strategy",
  deadline: "deadline",
  finishedAt: "finished_at",
  leaseOwner: "lease_owner",
  leaseExpiresAt: "lease_expires_at",
  traceId: "trace_id",
};

export class GoalRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
    private readonly cipher: PayloadCipher,
  ) {}

  /** Rows as stored, with sealed payloads opened. */
  #open(rows: GoalRecord[]): Promise<GoalRecord[]> {
    return Promise.all(rows.map((r) => openGoal(this.cipher, r)));
  }

  /**
   * Creates a goal, or returns the existing one with the same idempotency key
   * (`created: false`). `events` become the new goal's first events (sequence
   * 1, 2, ...), `planned` (sealed by `PlanRepository.sealPlanned`) its plan,
   * steps and attempts, and `audit` is appended to the audit log, in the same
   * statement and only when the goal is created.
   */
  async create(
    input: NewGoal,
    events: readonly NewGoalEvent[] = [],
    audit?: AuditEventInput,
    planned?: SealedPlanned,
  ): Promise<GoalCreated> {
    const [out] = await createGoals(this.db, this.cipher, [
      await this.prepare(input, events, audit, planned),
    ]);
    if (out instanceof Error) throw out;
    return out!;
  }

  /**
   * A goal to create (see `create`), validated and sealed; NOT_FOUND when its
   * parent goal does not exist.
   */
  async prepare(
    input: NewGoal,
    events: readonly NewGoalEvent[] = [],
    audit?: AuditEventInput,
    planned?: SealedPlanned,
  ): Promise<GoalCreation> {
    const goal = validateNewGoal(input);
    const key = input.idempotencyKey || null;
    if (input.parentGoalId) await this.get(input.parentGoalId);
    const c = payloadColumns;
    const [storedInput, storedEvents, output, error] = await Promise.all([
      this.cipher.sealPayload(this.tenantId, c.goalInput, goal.input),
      sealEvents(this.cipher, this.tenantId, events),
      input.output === undefined
        ? null
        : this.cipher.sealPayload(this.tenantId, c.goalOutput, input.output),
      input.error === undefined
        ? null
        : this.cipher.sealPayload(this.tenantId, c.goalError, input.error as unknown as JsonValue),
    ]);
    for (const e of storedEvents) requireText(e.type, "event type", 64);
    return {
      tenantId: this.tenantId,
      id: goal.id,
      idempotencyKey: key,
      item: {
        id: goal.id,
        tenant_id: this.tenantId,
        kind: goal.kind,
        input: storedInput,
        idempotency_key: key,
        priority: goal.priority,
        deadline: input.deadline?.toISOString() ?? null,
        status: goal.status,
        requested_strategy: input.requestedStrategy || null,
        parent_goal_id: input.parentGoalId || null,
        parent_step_id: input.parentStepId || null,
        labels: goal.labels,
        trace_id: input.traceId || null,
        submitted_by: input.submittedBy || null,
        trace_span_id: input.traceSpanId || null,
        last_event_seq: storedEvents.length,
        submitter_roles: input.submitterRoles?.length ? input.submitterRoles : null,
        plan_id: input.planId || null,
        strategy: input.strategy || null,
        output,
        error,
        finished_at: input.finishedAt?.toISOString() ?? null,
        events: storedEvents.map((e) => ({ type: e.type, data: e.data ?? null })),
        plan: planned?.planRow ?? null,
        steps: planned?.steps ?? [],
        attempts: planned?.attempts ?? [],
        audit: audit ? auditPartsJson(auditParts(audit)) : null,
      },
    };
  }

  /** The goal, or NOT_FOUND. */
  async get(id: string): Promise<GoalRecord> {
    const goal = await this.find(id);
    if (!goal) throw new MeshError(Code.NotFound, `goal ${id} not found`);
    return goal;
  }

  /** The goal, or undefined. */
  async find(id: string): Promise<GoalRecord | undefined> {
    requireText(id, "goal id");
    const [goal] = await this.db.mapped<GoalRecord>(
      GoalEntity,
      "select * from goals where tenant_id = ? and id = ?",
      [this.tenantId, id],
    );
    return goal && openGoal(this.cipher, goal);
  }

  /** The goal submitted with this idempotency key, or undefined. */
  async findByIdempotencyKey(key: string): Promise<GoalRecord | undefined> {
    requireText(key, "idempotency key", 256);
    const [goal] = await this.db.mapped<GoalRecord>(
      GoalEntity,
      "select * from goals where tenant_id = ? and idempotency_key = ?",
      [this.tenantId, key],
    );
    return goal && openGoal(this.cipher, goal);
  }

  /** The goals of `ids` that exist, in no particular order. */
  async getMany(ids: readonly string[]): Promise<GoalRecord[]> {
    for (const id of ids) requireText(id, "goal id");
    if (ids.length === 0) return [];
    return this.#open(
      await this.db.mapped<GoalRecord>(
        GoalEntity,
        "select * from goals where tenant_id = ? and id = any(?::text[])",
        [this.tenantId, pgArray(ids)],
      ),
    );
  }

  /** One page of goals, newest first (keyset on `created_at, id`). */
  async list(options: ListGoalsOptions = {}): Promise<GoalPage> {
    const size = pageSize(options.pageSize);
    const where = ["tenant_id = ?"];
    const params: unknown[] = [this.tenantId];
    if (options.statuses?.length) {
      for (const s of options.statuses) checkStatus(s);
      where.push("status = any(?::text[])");
      params.push(pgArray(options.statuses));
    }
    if (options.kind) {
      where.push("kind = ?");
      params.push(options.kind);
    }
    if (options.parentGoalId) {
      where.push("parent_goal_id = ?");
      params.push(options.parentGoalId);
    }
    if (options.idempotencyKey) {
      where.push("idempotency_key = ?");
      params.push(options.idempotencyKey);
    }
    if (options.createdAfter) {
      where.push("created_at >= ?");
      params.push(options.createdAfter);
    }
    if (options.createdBefore) {
      where.push("created_at < ?");
      params.push(options.createdBefore);
    }
    if (options.pageToken) {
      const [ms, id] = decodeToken(options.pageToken, 2);
      if (typeof ms !== "number" || typeof id !== "string") {
        throw new MeshError(Code.InvalidArgument, "invalid page token");
      }
      where.push("(created_at, id) < (?, ?)");
      params.push(new Date(ms), id);
    }
    // The first `size + 1` goals, then as many as fit the byte budget (at least one):
    // large goals are measured in PostgreSQL and only a page's worth leaves it.
    const maxBytes = options.maxBytes ?? listGoalsMaxBytes;
    const rows = await this.db.mapped<GoalRecord & { candidates?: number }>(
      GoalEntity,
      `with candidates as (
         select id, created_at, octet_length(input::text) + coalesce(octet_length(output::text), 0)
           + coalesce(octet_length(error::text), 0) as bytes
         from goals where ${where.join(" and ")} order by created_at desc, id desc limit ?),
       page as (
         select id, row_number() over w as n, sum(bytes) over w as running
         from candidates window w as (order by created_at desc, id desc))
       select g.*, (select count(*) from candidates)::int as candidates
       from goals g join page p on p.id = g.id
       where g.tenant_id = ? and p.n <= ? and (p.n = 1 or p.running <= ?)
       order by g.created_at desc, g.id desc`,
      [...params, size + 1, this.tenantId, size, maxBytes],
    );
    const candidates = rows[0]?.candidates ?? 0;
    const goals: GoalRecord[] = await this.#open(rows.map(({ candidates: _, ...goal }) => goal));
    const last = goals[goals.length - 1];
    const nextPageToken =
      candidates > goals.length && last ? encodeToken([last.createdAt.getTime(), last.id]) : "";
    return { goals, nextPageToken };
  }

  /**
   * An update of the goal (see `update`) with its events and its changed
   * steps, sealed, to write with others in one statement
   * (`StoreTransaction.updateGoals`). Only the fields a transition sets:
   * status and error always, output when given, plan and strategy when
   * given (never cleared), finishedAt (default: now when `status` is terminal).
   */
  async prepareUpdate(
    id: string,
    expectedVersion: number,
    patch: Pick<GoalPatch, "status" | "output" | "error" | "planId" | "strategy" | "finishedAt"> & {
      status: GoalStatusName;
    },
    also: GoalBatchWrites,
  ): Promise<GoalUpdate> {
    requireText(id, "goal id");
    checkStatus(patch.status);
    const c = payloadColumns;
    const [output, error, events] = await Promise.all([
      patch.output === undefined || patch.output === null
        ? null
        : this.cipher.sealPayload(this.tenantId, c.goalOutput, patch.output),
      patch.error
        ? this.cipher.sealPayload(this.tenantId, c.goalError, patch.error as unknown as JsonValue)
        : null,
      sealEvents(this.cipher, this.tenantId, also.events ?? []),
    ]);
    for (const e of events) requireText(e.type, "event type", 64);
    const finishedAt =
      patch.finishedAt ?? (terminalGoalStatuses.includes(patch.status) ? new Date() : null);
    return {
      tenantId: this.tenantId,
      id,
      expectedVersion,
      item: {
        tenant_id: this.tenantId,
        id,
        version: expectedVersion,
        after_seq: also.afterEventSeq,
        status: patch.status,
        error,
        set_output: patch.output !== undefined,
        output,
        plan_id: patch.planId || null,
        strategy: patch.strategy || null,
        finished_at: finishedAt?.toISOString() ?? null,
        events: events.map((e) => ({ type: e.type, data: e.data ?? null })),
        step_plan: also.steps?.planId ?? null,
        steps: also.steps?.steps ?? [],
        added: also.steps?.added ?? [],
        moved: also.steps?.moved ?? [],
      },
    };
  }

  /**
   * Applies `patch` if the goal is still at `expectedVersion`, and returns the
   * goal at its new version. ABORTED if someone else updated it first (or a
   * condition of `also.ctes` failed), NOT_FOUND if it does not exist. The
   * writes of `also` happen in the same statement, so only if the update
   * applies, and all of them or none.
   */
  async update(
    id: string,
    expectedVersion: number,
    patch: GoalPatch,
    also: GoalUpdateWrites = {},
  ): Promise<GoalRecord> {
    if (patch.status !== undefined) checkStatus(patch.status);
    const effective = { ...patch };
    if (patch.output !== undefined && patch.output !== null) {
      effective.output = await this.cipher.sealPayload(
        this.tenantId,
        payloadColumns.goalOutput,
        patch.output,
      );
    }
    if (patch.error) {
      effective.error = (await this.cipher.sealPayload(
        this.tenantId,
        payloadColumns.goalError,
        patch.error as unknown as JsonValue,
      )) as unknown as ErrorRecord;
    }
    if (patch.status && terminalGoalStatuses.includes(patch.status) && !patch.finishedAt) {
      effective.finishedAt = new Date();
    }
    const events = await sealEvents(this.cipher, this.tenantId, also.events ?? []);
    const set = assignments(effective, patchColumns);
    const seqGuard = also.afterEventSeq === undefined ? "" : " and last_event_seq = ?";
    const update = `update goals set ${[...set.sql, "version = version + 1", "updated_at = now()", "last_event_seq = last_event_seq + ?"].join(", ")}
       where tenant_id = ? and id = ? and version = ?${seqGuard} returning *`;
    const withEvents = events.length > 0 ? insertEvents("g", events) : undefined;
    const ctes = [
      ...(withEvents ? [`e as (${withEvents.sql})`] : []),
      ...(also.ctes ? [also.ctes.sql] : []),
    ];
    const [row] = await this.db.mapped<GoalRecord>(
      GoalEntity,
      ctes.length > 0 ? `with g as (${update}), ${ctes.join(", ")} select * from g` : update,
      [
        ...set.params,
        events.length,
        this.tenantId,
        id,
        expectedVersion,
        ...(also.afterEventSeq === undefined ? [] : [also.afterEventSeq]),
        ...(withEvents?.params ?? []),
        ...(also.ctes?.params ?? []),
      ],
    );
    if (row) return openGoal(this.cipher, row);
    const current = await this.get(id);
    throw new MeshError(
      Code.Aborted,
      `goal ${id} was changed concurrently (expected version ${expectedVersion}, found ${current.version}; last event ${current.lastEventSeq})`,
      { details: { goalId: id, expectedVersion, actualVersion: current.version } },
    );
  }
}

/** The columns of a goal's item in the creation statement (`GoalCreation.item`). */
const creationColumns = `id text, tenant_id text, kind text, input jsonb, idempotency_key text,
  priority int, deadline timestamptz, status text, requested_strategy text, parent_goal_id text,
  parent_step_id text, labels jsonb, trace_id text, submitted_by text, trace_span_id text,
  last_event_seq bigint, submitter_roles text[], plan_id text, strategy text, output jsonb,
  error jsonb, finished_at timestamptz, events jsonb, plan jsonb, steps jsonb, attempts jsonb,
  audit jsonb`;

/**
 * The statement creating goals (of any tenants) in one go: the goal rows
 * (a repeated idempotency key inserts nothing), then, for the goals inserted
 * only, their events, plans, steps and attempts, and their audit records,
 * chained in the items' order.
 */
const createGoalsSql = `with recursive i as (
    select * from jsonb_to_recordset(?::jsonb) as x(${creationColumns}, n int)),
  g as (
    insert into goals (id, tenant_id, kind, input, idempotency_key, priority, deadline, status,
      requested_strategy, parent_goal_id, parent_step_id, labels, trace_id, submitted_by,
      trace_span_id, last_event_seq, submitter_roles, plan_id, strategy, output, error, finished_at)
    select id, tenant_id, kind, input, idempotency_key, priority, deadline, status,
      requested_strategy, parent_goal_id, parent_step_id, labels, trace_id, submitted_by,
      trace_span_id, last_event_seq, submitter_roles, plan_id, strategy, output, error, finished_at
    from i order by n
    on conflict (tenant_id, idempotency_key) where idempotency_key is not null do nothing
    returning *),
  e as (
    insert into goal_events (goal_id, sequence, tenant_id, type, data)
    select g.id, t.k, g.tenant_id, t.ev->>'type', t.ev->'data'
    from g join i on i.id = g.id and i.tenant_id = g.tenant_id,
      jsonb_array_elements(i.events) with ordinality as t(ev, k)),
  ${insertPlannedOf("g", "i")},
  audit_items as (
    select row_number() over (order by i.n) as k, a.*
    from g join i on i.id = g.id and i.tenant_id = g.tenant_id,
      jsonb_to_record(i.audit) as a(before text, after text, time timestamptz, tenant_id text,
        actor text, action text, resource text, details jsonb)
    where i.audit is not null),
  ${auditAppendMany("audit_items")}
  select * from g`;

/** Most times a goal whose idempotency key conflicted with a write that then rolled back is tried again. */
const maxCreationTries = 5;

/**
 * Creates goals of any tenants in one statement (see `GoalRepository.create`
 * for one). Each goal's own outcome at its index: what creating it did, or
 * its error. A repeated idempotency key (also twice in one call) creates
 * nothing and answers the goal that has it. When the statement fails, each
 * goal is created on its own, so one goal's failure (its tenant unknown, its
 * parent gone) does not fail the others; the store away fails them all.
 * @internal through `StoreTransaction.createGoals`
 */
export async function createGoals(
  db: Db,
  cipher: PayloadCipher,
  creations: readonly GoalCreation[],
): Promise<(GoalCreated | MeshError)[]> {
  const out: (GoalCreated | MeshError | undefined)[] = creations.map(() => undefined);
  let todo = creations.map((_, index) => index);
  for (let attempt = 1; todo.length > 0; attempt++) {
    let rows: GoalRecord[];
    try {
      rows = await db.mapped<GoalRecord>(GoalEntity, createGoalsSql, [
        json(todo.map((index, n) => ({ ...creations[index]!.item, n }))),
      ]);
    } catch (err) {
      const e = createError(err, creations[todo[0]!]!.tenantId);
      if (todo.length === 1 || isUnavailable(e)) {
        for (const index of todo)
          out[index] = todo.length === 1 ? e : createError(err, creations[index]!.tenantId);
        break;
      }
      // One goal may have failed them all: each on its own says which.
      const alone = await Promise.all(
        todo.map((index) => createGoals(db, cipher, [creations[index]!])),
      );
      todo.forEach((index, k) => {
        out[index] = alone[k]![0];
      });
      break;
    }
    const created = new Map(rows.map((r) => [`${r.tenantId}/${r.id}`, r]));
    const again: number[] = [];
    await Promise.all(
      todo.map(async (index) => {
        const c = creations[index]!;
        const row = created.get(`${c.tenantId}/${c.id}`);
        try {
          if (row) {
            out[index] = { goal: await openGoal(cipher, row), created: true };
            return;
          }
          const existing =
            c.idempotencyKey === null
              ? undefined
              : await new GoalRepository(db, c.tenantId, cipher).findByIdempotencyKey(
                  c.idempotencyKey,
                );
          if (existing) out[index] = { goal: existing, created: false };
          // The conflicting insert rolled back between our insert and select: try again.
          else if (attempt < maxCreationTries) again.push(index);
          else
            out[index] = new MeshError(
              Code.Aborted,
              `goal ${c.id}: its idempotency key kept conflicting with writes that rolled back`,
              { retryable: true },
            );
        } catch (err) {
          out[index] = MeshError.from(err);
        }
      }),
    );
    todo = again;
  }
  return out as (GoalCreated | MeshError)[];
}

/**
 * The statement updating goals (of any tenants) in one go. Each goal's
 * optimistic lock is a row condition, not a statement-wide one: the goal rows
 * still at their expected version and last event sequence are locked, then
 * the changed steps of those goals still at their expected versions; a goal
 * whose row and every changed step were locked is updated, with its steps,
 * attempts and events; any other goal is left alone and absent from the
 * answer (ABORTED for it only). A lock taken (FOR UPDATE) re-reads a row
 * another transaction changed meanwhile, so what was locked at its expected
 * version stays so until the updates below, which read the locked rows.
 *
 * The goal rows are found by id alone (the primary key; ids are unique across
 * tenants) one item after the other, in (tenant, id) order, and the tenant
 * checked on the row found. Asked for `tenant_id` and `id` together, or as a
 * join, the planner may take `goals_tenant_created` (which reads a tenant's
 * whole range for one id) or a hash join over the whole table: equal in cost
 * while the table is small, and a prepared statement keeps the plan it made
 * then until the table is analyzed again, however much it grew (in a bench
 * run, every result's update read hundreds of pages).
 */
const updateGoalsSql = `with x as (
    select * from jsonb_to_recordset(?::jsonb) as x(n int, tenant_id text, id text, version int,
      after_seq bigint, status text, error jsonb, set_output boolean, output jsonb, plan_id text,
      strategy text, finished_at timestamptz, events jsonb, step_plan text, steps jsonb,
      added jsonb, moved jsonb)),
  goal_locks as (
    select x.n from (select * from x order by tenant_id, id) x
      cross join lateral (
        select t.tenant_id from goals t
        where t.id = x.id and t.version = x.version and t.last_event_seq = x.after_seq
        for update) l
    where l.tenant_id = x.tenant_id),
  step_locks as (
    select x.n from goal_locks l join x on x.n = l.n
      cross join lateral jsonb_to_recordset(x.steps) as c(step_id text, expected_version int)
      join steps s on s.tenant_id = x.tenant_id and s.plan_id = x.step_plan
        and s.step_id = c.step_id and s.version = c.expected_version
    for update of s),
  ok as (
    select x.* from x join goal_locks l on l.n = x.n
    where jsonb_array_length(x.steps) = (select count(*) from step_locks k where k.n = x.n)),
  g as (
    update goals t set status = ok.status, error = ok.error,
      output = case when ok.set_output then ok.output else t.output end,
      plan_id = coalesce(ok.plan_id, t.plan_id), strategy = coalesce(ok.strategy, t.strategy),
      finished_at = coalesce(ok.finished_at, t.finished_at), version = t.version + 1,
      updated_at = now(), last_event_seq = t.last_event_seq + jsonb_array_length(ok.events)
    from ok where t.id = ok.id
    returning t.*, ok.n as batch_n),
  e as (
    insert into goal_events (goal_id, sequence, tenant_id, type, data)
    select g.id, g.last_event_seq - jsonb_array_length(x.events) + v.k, g.tenant_id,
      v.ev->>'type', v.ev->'data'
    from g join x on x.n = g.batch_n,
      jsonb_array_elements(x.events) with ordinality as v(ev, k)),
  step_rows as (
    update steps s set status = c.status, attempts = c.attempts, output = c.output,
      error = c.error, agent_ids = c.agent_ids, child_goal_id = c.child_goal_id,
      next_attempt_at = c.next_attempt_at, started_at = c.started_at,
      finished_at = c.finished_at, lease_owner = null, lease_expires_at = null,
      version = s.version + 1, updated_at = now()
    from g join x on x.n = g.batch_n
      cross join lateral jsonb_to_recordset(x.steps) as c(${stepRecordColumns}, expected_version int)
    where s.tenant_id = g.tenant_id and s.plan_id = x.step_plan and s.step_id = c.step_id
    returning s.plan_id, s.step_id, s.tenant_id, s.goal_id),
  attempt_rows as (
    insert into step_attempts (attempt_id, tenant_id, goal_id, plan_id, step_id, attempt,
      replica, outcome, agent_id, output, error, cost, started_at, finished_at)
    select a.attempt_id, s.tenant_id, s.goal_id, s.plan_id, s.step_id, a.attempt, a.replica,
      a.outcome, a.agent_id, a.output, a.error, a.cost,
      coalesce(a.started_at, a.finished_at), a.finished_at
    from step_rows s join x on x.tenant_id = s.tenant_id and x.id = s.goal_id
      cross join lateral jsonb_to_recordset(x.added) as a(${attemptRecordColumns})
    where a.step_id = s.step_id
    on conflict (attempt_id) do nothing),
  attempt_moves as (
    update step_attempts a set outcome = m.outcome, agent_id = coalesce(m.agent_id, a.agent_id),
      started_at = coalesce(a.started_at, m.started_at, m.finished_at),
      finished_at = m.finished_at, output = m.output, error = m.error, cost = m.cost
    from step_rows s join x on x.tenant_id = s.tenant_id and x.id = s.goal_id
      cross join lateral jsonb_to_recordset(x.moved) as m(${attemptRecordColumns})
    where m.step_id = s.step_id and a.tenant_id = s.tenant_id and a.attempt_id = m.attempt_id
      and case when m.finished_at is null then a.outcome = 'DISPATCHED'
        else a.finished_at is null end)
  select * from g`;

/**
 * Writes goal updates (of any tenants) in one statement (see
 * `GoalRepository.prepareUpdate`). Each update's own outcome at its index:
 * the goal as now stored, or ABORTED when the goal or one of its changed
 * steps was not at the expected version (nothing of that update is written;
 * the others are). Two updates of the same goal never share a statement: a
 * later one is written after the earlier. When the statement fails, each
 * update is written on its own, so one update's failure fails no other; the
 * store away fails them all.
 * @internal through `StoreTransaction.updateGoals`
 */
export async function updateGoals(
  db: Db,
  cipher: PayloadCipher,
  updates: readonly GoalUpdate[],
): Promise<(GoalRecord | MeshError)[]> {
  const out: (GoalRecord | MeshError | undefined)[] = updates.map(() => undefined);
  let todo = updates.map((_, index) => index);
  while (todo.length > 0) {
    const seen = new Set<string>();
    const round: number[] = [];
    const later: number[] = [];
    for (const index of todo) {
      const key = `${updates[index]!.tenantId}/${updates[index]!.id}`;
      if (seen.has(key)) later.push(index);
      else {
        seen.add(key);
        round.push(index);
      }
    }
    await updateRound(db, cipher, updates, round, out);
    todo = later;
  }
  return out as (GoalRecord | MeshError)[];
}

/** One statement of `updateGoals`, of updates of distinct goals. */
async function updateRound(
  db: Db,
  cipher: PayloadCipher,
  updates: readonly GoalUpdate[],
  round: readonly number[],
  out: (GoalRecord | MeshError | undefined)[],
): Promise<void> {
  let rows: (GoalRecord & { batchN?: number; batch_n?: number })[];
  try {
    rows = await db.mapped<GoalRecord>(GoalEntity, updateGoalsSql, [
      json(round.map((index, n) => ({ ...updates[index]!.item, n }))),
    ]);
  } catch (err) {
    const e = MeshError.from(err);
    if (round.length === 1 || isUnavailable(e)) {
      for (const index of round) out[index] = e;
      return;
    }
    // One update may have failed them all (or a deadlock with another replica): each alone.
    await Promise.all(round.map((index) => updateRound(db, cipher, updates, [index], out)));
    return;
  }
  const updated = new Map(rows.map((r) => [`${r.tenantId}/${r.id}`, r]));
  await Promise.all(
    round.map(async (index) => {
      const u = updates[index]!;
      const row = updated.get(`${u.tenantId}/${u.id}`);
      if (row === undefined) {
        out[index] = new MeshError(
          Code.Aborted,
          `goal ${u.id} or one of its steps was changed concurrently (expected version ${u.expectedVersion})`,
          { details: { goalId: u.id, expectedVersion: u.expectedVersion } },
        );
        return;
      }
      const { batchN: _n, batch_n: _m, ...goal } = row;
      try {
        out[index] = await openGoal(cipher, goal);
      } catch (err) {
        out[index] = MeshError.from(err);
      }
    }),
  );
}

function createError(err: unknown, tenantId: string): MeshError {
  const constraint = constraintOf(isMeshError(err) ? err.cause : err);
  if (constraint.includes("tenant_id_fkey")) {
    return new MeshError(Code.NotFound, `tenant ${tenantId} not found`, { cause: err });
  }
  if (constraint === "goals_pkey") {
    return new MeshError(Code.AlreadyExists, "a goal with this id already exists", {
      cause: err,
    });
  }
  if (constraint.includes("parent_goal_id_fkey")) {
    return new MeshError(Code.NotFound, "the parent goal was not found", { cause: err });
  }
  return err instanceof MeshError ? err : MeshError.from(err);
}

function checkStatus(status: string): void {
  if (!goalStatuses.includes(status as GoalStatusName)) {
    throw new MeshError(Code.InvalidArgument, `invalid goal status ${JSON.stringify(status)}`);
  }
}

function validateNewGoal(input: NewGoal) {
  const kind = requireText(input.kind, "goal kind", 128);
  const id = input.id === undefined ? randomUUID() : requireText(input.id, "goal id", 128);
  const priority = input.priority ?? 0;
  if (!Number.isInteger(priority) || Math.abs(priority) > 2 ** 31 - 1) {
    throw new MeshError(Code.InvalidArgument, "goal priority must be a 32-bit integer");
  }
  const status = input.status ?? "PENDING";
  checkStatus(status);
  const labels = input.labels ?? {};
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== "string") {
      throw new MeshError(Code.InvalidArgument, `label ${JSON.stringify(k)} must be a string`);
    }
  }
  const goalInput = input.input ?? {};
  if (typeof goalInput !== "object" || goalInput === null || Array.isArray(goalInput)) {
    throw new MeshError(Code.InvalidArgument, "goal input must be an object");
  }
  if (input.idempotencyKey) requireText(input.idempotencyKey, "idempotency key", 256);
  if (input.submittedBy) requireText(input.submittedBy, "goal submitter", 1024);
  if (input.deadline && Number.isNaN(input.deadline.getTime())) {
    throw new MeshError(Code.InvalidArgument, "goal deadline is not a valid time");
  }
  return { id, kind, priority, status, labels, input: goalInput };
}
