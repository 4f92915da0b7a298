/**
 * The append-only audit log. Each row carries a gapless sequence and
 * `hash = sha256(prev_hash || canonical(event))`, so editing, deleting or
 * reordering any row breaks the chain at that row; a database trigger rejects
 * UPDATE, DELETE and TRUNCATE outright. Appends serialize on the one row of
 * `audit_head` (readers are not blocked), which also makes the sequence
 * gapless: each append is one statement that advances the head (computing
 * the hash in SQL from the canonical text prepared here) and inserts the row,
 * so the lock is held for that statement and the caller's commit only.
 *
 * @example
 * await store.audit.append(goalSubmittedEvent({ tenantId, goalId, kind, actor }));
 * const result = await store.audit.verify();
 * if (!result.ok) console.error(`audit row ${result.seq} was tampered with: ${result.reason}`);
 */
import { createHash } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import { securityEventOfAudit } from "../siem/audit-mapping.js";
import { emitSecurityEvent } from "../siem/siem.js";
import { activeSpanContext } from "../telemetry/trace-context.js";
import { canonicalJson } from "./canonical-json.js";
import { type Db, json, requireText } from "./db.js";
import { AuditEventEntity } from "./entities.js";
import type { AuditEventRecord } from "./records.js";

/** `prev_hash` of the first row. */
export const genesisHash = "0".repeat(64);

/** What a caller appends; the log adds sequence, time and hashes. */
export interface AuditEventInput {
  /** Who: a SPIFFE ID, `tenant/subject` of a principal, or `system`. */
  actor: string;
  /** What, dot-separated, e.g. `agent.registered`. */
  action: string;
  /** On what, e.g. `agent/<id>`. */
  resource: string;
  /** Tenant concerned, if any. */
  tenantId?: string | null;
  /** Structured details; never secrets. */
  details?: JsonObject;
}

/** Outcome of `verify()`. */
export type AuditVerification =
  | { ok: true; rows: number; headSeq: number; headHash: string }
  | {
      ok: false;
      /** The first row that does not fit the chain. */
      seq: number;
      reason: "hash mismatch" | "previous hash mismatch" | "sequence gap";
      /** Rows checked before it. */
      rows: number;
    };

export interface AuditListOptions {
  /** Only rows with a greater sequence; default 0. */
  afterSeq?: number;
  /** Only this tenant's rows. */
  tenantId?: string;
  /** At most this many rows; default 100, at most 1000. */
  limit?: number;
}

/**
 * Hands a stored row to the SIEM export when it is a security event, once
 * the row is committed: an append inside a transaction that rolls back
 * reports nothing, as the row never existed (never throws).
 */
function reportSecurityEvent(db: Db, row: AuditEventRecord): void {
  try {
    const event = securityEventOfAudit(
      row as unknown as Parameters<typeof securityEventOfAudit>[0],
    );
    if (!event) return;
    // The trace is the appending request's, read now: the commit may finish elsewhere.
    const traceId = activeSpanContext()?.traceId ?? null;
    db.afterCommit(() => emitSecurityEvent({ ...event, time: row.time.getTime(), traceId }));
  } catch {
    // The SIEM copy must never fail an append.
  }
}

/** The hash a row must carry, given its predecessor's hash. */
export function auditHash(prevHash: string, event: Omit<AuditEventRecord, "prevHash" | "hash">) {
  return createHash("sha256").update(prevHash).update(auditBody(event)).digest("hex");
}

/** The canonical text of a row that its hash covers. */
function auditBody(event: Omit<AuditEventRecord, "prevHash" | "hash">): string {
  return canonicalJson({
    seq: event.seq,
    time: event.time.toISOString(),
    tenantId: event.tenantId,
    actor: event.actor,
    action: event.action,
    resource: event.resource,
    details: event.details,
  });
}

export class AuditLog {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Appends one event and returns the stored row. */
  async append(input: AuditEventInput): Promise<AuditEventRecord> {
    const append = auditAppend(input);
    const [row] = await this.db.mapped<AuditEventRecord>(
      AuditEventEntity,
      `with ${append.sql} select * from audit_row`,
      append.params,
    );
    // The one choke point security events pass through: denials, admin actions, refused results.
    reportSecurityEvent(this.db, row!);
    return row!;
  }

  /** Rows in sequence order. */
  async list(options: AuditListOptions = {}): Promise<AuditEventRecord[]> {
    const limit = Math.min(Math.max(options.limit ?? 100, 1), 1000);
    const params: unknown[] = [options.afterSeq ?? 0];
    let where = "seq > ?";
    if (options.tenantId !== undefined) {
      where += " and tenant_id = ?";
      params.push(options.tenantId);
    }
    params.push(limit);
    return this.db.mapped<AuditEventRecord>(
      AuditEventEntity,
      `select * from audit_events where ${where} order by seq limit ?`,
      params,
    );
  }

  /** The chain's head: the newest row's sequence and hash (0 and the genesis hash when empty). */
  async head(): Promise<{ seq: number; hash: string }> {
    const [row] = await this.db.rows<{ seq: string | number; hash: string }>(
      "select seq, hash from audit_head",
    );
    if (!row) throw new MeshError(Code.FailedPrecondition, "the audit head is missing");
    return { seq: Number(row.seq), hash: row.hash };
  }

  /**
   * Walks the whole chain and reports the first row that does not fit.
   * `onRow` sees each row that fits; returning false stops the walk there
   * (the result then describes the chain up to that row).
   */
  async verify(
    options: { batchSize?: number; onRow?: (row: AuditEventRecord) => boolean } = {},
  ): Promise<AuditVerification> {
    const batch = options.batchSize ?? 1000;
    let prevHash = genesisHash;
    let expected = 1;
    let rows = 0;
    for (;;) {
      const page = await this.list({ afterSeq: expected - 1, limit: batch });
      for (const row of page) {
        if (row.seq !== expected) return { ok: false, seq: expected, reason: "sequence gap", rows };
        if (row.prevHash !== prevHash) {
          return { ok: false, seq: row.seq, reason: "previous hash mismatch", rows };
        }
        if (auditHash(row.prevHash, row) !== row.hash) {
          return { ok: false, seq: row.seq, reason: "hash mismatch", rows };
        }
        if (options.onRow && !options.onRow(row))
          return { ok: true, rows, headSeq: row.seq, headHash: row.hash };
        prevHash = row.hash;
        expected++;
        rows++;
      }
      if (page.length < batch) break;
    }
    return { ok: true, rows, headSeq: expected - 1, headHash: prevHash };
  }
}

/**
 * CTEs appending `input` to the chain: `audit_next` advances the head and
 * `audit_row` is the inserted row. With `when` (an SQL condition) nothing is
 * appended unless it holds, e.g. `exists (select 1 from g)` to audit a row
 * only when another CTE of the same statement created it.
 * @internal for repositories that audit their own writes in one statement
 */
export function auditAppend(
  input: AuditEventInput,
  when = "true",
): { sql: string; params: unknown[] } {
  const p = auditParts(input);
  return {
    sql: `audit_next as (
         update audit_head set seq = seq + 1, prev_hash = hash,
           hash = encode(sha256(convert_to(hash || ? || (seq + 1)::text || ?, 'UTF8')), 'hex')
         where ${when}
         returning seq, prev_hash, hash),
       audit_row as (
         insert into audit_events (seq, time, tenant_id, actor, action, resource, details, prev_hash, hash)
         select seq, ?, ?, ?, ?, ?, ?::jsonb, prev_hash, hash from audit_next
         returning *)`,
    params: [p.before, p.after, p.time, p.tenantId, p.actor, p.action, p.resource, json(p.details)],
  };
}

/**
 * An event to append as `auditAppendMany` takes it: validated, timed, and the
 * canonical text its hash covers split around the sequence the head assigns.
 * @internal
 */
export interface AuditParts {
  before: string;
  after: string;
  time: Date;
  tenantId: string | null;
  actor: string;
  action: string;
  resource: string;
  details: JsonObject;
}

/** `input` validated and timed now, ready for the chain (see `AuditParts`). @internal */
export function auditParts(input: AuditEventInput): AuditParts {
  const actor = requireText(input.actor, "audit actor", 512);
  const action = requireText(input.action, "audit action", 128);
  const resource = requireText(input.resource, "audit resource", 1024);
  // What jsonb gives back: undefined dropped, dates as strings; hashing must see the same.
  const details = JSON.parse(JSON.stringify(input.details ?? {})) as JsonObject;
  if (typeof details !== "object" || details === null || Array.isArray(details)) {
    throw new MeshError(Code.InvalidArgument, "audit details must be an object");
  }
  const time = new Date();
  const tenantId = input.tenantId ?? null;
  // The canonical text auditHash() hashes, split around the sequence the head assigns.
  // Keys are sorted, so the top-level "seq" is the last one (details precede it).
  const body = auditBody({ seq: 0, time, tenantId, actor, action, resource, details });
  const at = body.lastIndexOf(',"seq":0,');
  const before = body.slice(0, at + ',"seq":'.length);
  const after = body.slice(at + ',"seq":0'.length);
  return { before, after, time, tenantId, actor, action, resource, details };
}

/** `AuditParts` as one element of the JSON array `auditAppendMany` reads. @internal */
export function auditPartsJson(p: AuditParts) {
  return {
    before: p.before,
    after: p.after,
    time: p.time.toISOString(),
    tenant_id: p.tenantId,
    actor: p.actor,
    action: p.action,
    resource: p.resource,
    details: p.details,
  };
}

/**
 * CTEs appending several events to the chain in one statement, in the order
 * of `k` (1, 2, ... without gaps) of `items`, a relation of `auditPartsJson`
 * columns plus `k`: `audit_base` locks the head (at its newest version, so
 * it waits for an append in flight), `audit_chain` hashes each row on its
 * predecessor (a recursive CTE: the statement's `with` must be
 * `with recursive`), `audit_next` moves the head to the last row and
 * `audit_rows` inserts the rows. With no items nothing is locked or written.
 * @internal for repositories that audit a batch of their own writes
 */
export function auditAppendMany(items: string): string {
  return `audit_base as (
      select seq, hash from audit_head where exists (select 1 from ${items}) for update),
    audit_chain as (
      select 0::bigint as k, seq, null::text as prev_hash, hash from audit_base
      union all
      select c.k + 1, c.seq + 1, c.hash,
        encode(sha256(convert_to(c.hash || i.before || (c.seq + 1)::text || i.after, 'UTF8')), 'hex')
      from audit_chain c join ${items} i on i.k = c.k + 1),
    audit_next as (
      update audit_head h set seq = c.seq, prev_hash = c.prev_hash, hash = c.hash
      from (select seq, prev_hash, hash from audit_chain where k > 0 order by k desc limit 1) c
      returning h.seq),
    audit_rows as (
      insert into audit_events (seq, time, tenant_id, actor, action, resource, details, prev_hash, hash)
      select c.seq, i.time, i.tenant_id, i.actor, i.action, i.resource, i.details, c.prev_hash, c.hash
      from audit_chain c join ${items} i on i.k = c.k
      returning *)`;
}

/** An agent registered, re-registered, deregistered or expired. */
export function registrationEvent(input: {
  actor: string;
  change: "registered" | "deregistered" | "expired" | "tool.registered" | "conformance.passed";
  agentId: string;
  details?: JsonObject;
}): AuditEventInput {
  return {
    actor: input.actor,
    action: `agent.${input.change}`,
    resource: `agent/${input.agentId}`,
    details: input.details ?? {},
  };
}

/** The policy denied a call. */
export function policyDenialEvent(input: {
  /** SPIFFE ID of the peer, or `unknown`. */
  peer: string;
  /** Full method name, e.g. `/agentmesh.v1.ExecutorService/SubmitGoal`. */
  method: string;
  reason: string;
  tenantId?: string | null;
  /** `tenant/subject` of the principal the peer acted for, if any. */
  principal?: string;
}): AuditEventInput {
  const details: JsonObject = { reason: input.reason };
  if (input.principal) details.principal = input.principal;
  return {
    actor: input.peer,
    action: "policy.denied",
    resource: input.method,
    tenantId: input.tenantId ?? null,
    details,
  };
}

/** A goal was accepted. */
export function goalSubmittedEvent(input: {
  actor: string;
  tenantId: string;
  goalId: string;
  kind: string;
  details?: JsonObject;
}): AuditEventInput {
  return {
    actor: input.actor,
    action: "goal.submitted",
    resource: `goal/${input.goalId}`,
    tenantId: input.tenantId,
    details: { kind: input.kind, ...input.details },
  };
}

/** An administrator changed something: `admin.<what>`, e.g. `admin.tenant.created`, `admin.apikey.revoked`. */
export function adminActionEvent(input: {
  actor: string;
  what: string;
  resource: string;
  tenantId?: string | null;
  details?: JsonObject;
}): AuditEventInput {
  return {
    actor: input.actor,
    action: `admin.${input.what}`,
    resource: input.resource,
    tenantId: input.tenantId ?? null,
    details: input.details ?? {},
  };
}
