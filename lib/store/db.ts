/**
 * @internal The one door repositories use to reach PostgreSQL. It hands each
 * call a fresh EntityManager fork (or the transaction's), turns every error
 * into a MeshError and tells the health tracker what it saw.
 *
 * Raw SQL uses knex `?` placeholders. knex expands JavaScript arrays into
 * lists, so array values go through `pgArray()` and JSON through `json()`.
 *
 * A statement outside a transaction (every hot one: a goal's transitions, an
 * outcome, a claim) goes straight to a pooled pg connection with its values
 * as bind parameters, as a named prepared statement: PostgreSQL parses and
 * plans its text once per connection. MikroORM's `execute` (still used inside
 * transactions) writes the values into the SQL text instead, so PostgreSQL
 * parsed and planned every statement anew: about half of its CPU under load.
 * `preparedStatements: false` sends unnamed statements (for a pooler in
 * transaction mode that cannot keep prepared statements).
 */
import { createHash } from "node:crypto";
import type { EntitySchema } from "@mikro-orm/core";
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import { Code, MeshError } from "../errors/mesh-error.js";
import { isUnavailable, toStoreError } from "./store-error.js";
import type { HealthTracker } from "./store-health.js";
import { storeCounts } from "./store-metrics.js";

export type Row = Record<string, unknown>;

// biome-ignore lint/suspicious/noExplicitAny: any entity schema; rows are typed by the caller
type AnyEntity = EntitySchema<any, any>;

/** The slice of knex's pg client and of a pooled pg connection the direct path uses. */
interface PgPool {
  acquireConnection(): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<void>;
  positionBindings(sql: string): string;
}
interface PgConnection {
  query(query: { text: string; values: unknown[]; name?: string }): Promise<{ rows: Row[] }>;
  /** pg's record of what this connection prepared (name → text). */
  connection: { parsedStatements: Record<string, string> };
}
type Statement = { text: string; name: string | undefined };

/** Distinct statement texts prepared at most (each connection keeps what it prepared). */
const maxPrepared = 1_000;

export class Db {
  /** Statement text (with `?`) → the text pg gets (with `$n`) and its prepared name. */
  readonly #statements: Map<string, Statement>;
  /** Inside a transaction: what runs once it committed (dropped when it rolls back). */
  readonly #afterCommit: (() => void)[] = [];

  constructor(
    readonly orm: MikroORM,
    private readonly health: HealthTracker,
    private readonly txEm?: EntityManager,
    private readonly prepare = true,
    statements?: Map<string, Statement>,
  ) {
    this.#statements = statements ?? new Map();
  }

  /** Whether calls run inside a transaction. */
  get inTransaction(): boolean {
    return this.txEm !== undefined;
  }

  /**
   * Runs `fn` once what this Db wrote is committed: at once outside a
   * transaction, after COMMIT inside one, never when it rolls back. For
   * copies to the outside world (security events) that must not report
   * what did not happen. `fn` must not throw.
   */
  afterCommit(fn: () => void): void {
    if (this.txEm) this.#afterCommit.push(fn);
    else fn();
  }

  /** Runs `fn` (one statement) with an EntityManager, mapping errors and recording health. */
  async run<T>(fn: (em: EntityManager) => Promise<T>): Promise<T> {
    storeCounts.statements++;
    const em = this.txEm ?? this.orm.em.fork({ clear: true, useContext: false });
    try {
      const result = await fn(em);
      if (!this.txEm) this.health.succeeded();
      return result;
    } catch (err) {
      if (isUnavailable(err)) this.health.failed();
      throw toStoreError(err);
    }
  }

  /** Runs one SQL statement and returns its rows (snake_case columns). */
  rows<T extends Row = Row>(sql: string, params: unknown[] = []): Promise<T[]> {
    if (!this.txEm) return this.#direct(sql, params) as Promise<T[]>;
    return this.run((em) => em.execute<T[]>(sql, params, "all"));
  }

  /** Runs one SQL statement and maps its rows onto an entity's camelCase properties. */
  async mapped<T>(entity: AnyEntity, sql: string, params: unknown[] = []): Promise<T[]> {
    if (!this.txEm) {
      const rows = await this.#direct(sql, params);
      return rows.map((row) => mapRow(this.orm.em, entity, row) as T);
    }
    return this.run(async (em) => {
      const rows = await em.execute<Row[]>(sql, params, "all");
      return rows.map((row) => mapRow(em, entity, row) as T);
    });
  }

  /** One statement on a pooled connection, values as bind parameters (see the module's comment). */
  async #direct(sql: string, params: unknown[]): Promise<Row[]> {
    storeCounts.statements++;
    const pool = this.orm.em.getConnection().getKnex().client as unknown as PgPool;
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      const prepared = this.prepare && this.#statements.size < maxPrepared;
      statement = {
        text: pool.positionBindings(sql),
        // The text decides the name: one name never stands for two texts.
        name: prepared
          ? `am_${createHash("sha256").update(sql).digest("base64url").slice(0, 24)}`
          : undefined,
      };
      if (prepared) this.#statements.set(sql, statement);
    }
    let connection: PgConnection | undefined;
    try {
      connection = await pool.acquireConnection();
      const { rows } = await query(connection, statement, params);
      this.health.succeeded();
      return rows;
    } catch (err) {
      if (isUnavailable(err)) this.health.failed();
      throw toStoreError(err);
    } finally {
      if (connection) await pool.releaseConnection(connection).catch(() => undefined);
    }
  }

  /**
   * Runs `fn` in one transaction (READ COMMITTED). Inside a transaction the
   * same Db is reused, so repository methods compose into one unit.
   */
  transaction<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.txEm) return fn(this);
    // BEGIN here, COMMIT or ROLLBACK through run().
    storeCounts.statements++;
    storeCounts.transactions++;
    let inner: Db | undefined;
    return this.run((em) =>
      em.transactional((tx) => {
        inner = new Db(this.orm, this.health, tx as EntityManager, this.prepare, this.#statements);
        return fn(inner);
      }),
    ).then((result) => {
      for (const done of inner ? inner.#afterCommit.splice(0) : []) done();
      return result;
    });
  }
}

/**
 * Runs a statement on a connection. A prepared `select *` whose table gained
 * a column since (a migration by a newer replica) fails with "cached plan
 * must not change result type" without running: prepare it again, once.
 */
async function query(connection: PgConnection, statement: Statement, values: unknown[]) {
  try {
    return await connection.query({ ...statement, values });
  } catch (err) {
    const { name } = statement;
    if (name === undefined || !/cached plan must not change result type/.test(String(err))) {
      throw err;
    }
    await connection.query({ text: `deallocate "${name}"`, values: [] });
    delete connection.connection.parsedStatements[name];
    return connection.query({ ...statement, values });
  }
}

/** A PostgreSQL array literal for a `?::text[]` or `?::real[]` parameter. */
export function pgArray(values: readonly (string | number)[]): string {
  const items = values.map((v) =>
    typeof v === "number" ? String(v) : `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`,
  );
  return `{${items.join(",")}}`;
}

/** A JSON parameter for a `?::jsonb` placeholder. */
export function json(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** Throws INVALID_ARGUMENT unless `value` is a non-empty string of at most `max` characters. */
export function requireText(value: unknown, what: string, max = 256): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new MeshError(Code.InvalidArgument, `${what} is required`);
  }
  if (value.length > max) {
    throw new MeshError(Code.InvalidArgument, `${what} is longer than ${max} characters`);
  }
  if (value.includes("\u0000")) {
    throw new MeshError(Code.InvalidArgument, `${what} contains a NUL character`);
  }
  return value;
}

/** Clamps a page size: 0 or absent means `fallback`, above `max` means `max`. */
export function pageSize(requested: number | undefined, fallback = 50, max = 500): number {
  if (requested === undefined || requested <= 0 || !Number.isFinite(requested)) return fallback;
  return Math.min(Math.floor(requested), max);
}

/** Encodes a keyset position as an opaque page token. */
export function encodeToken(position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

/** Decodes a page token; INVALID_ARGUMENT when it was not made by `encodeToken` with `arity` parts. */
export function decodeToken(token: string, arity: number): (string | number)[] {
  try {
    const value: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (
      Array.isArray(value) &&
      value.length === arity &&
      value.every((v) => typeof v === "string" || typeof v === "number")
    ) {
      return value;
    }
  } catch {
    // fall through
  }
  throw new MeshError(Code.InvalidArgument, "invalid page token");
}

/**
 * Column of a patchable field: `name`, or `name:jsonb` / `name:text[]` for
 * values that need encoding.
 */
export type ColumnSpec = string;

/**
 * Builds `col = ?` assignments for the fields of `patch` that are not
 * undefined; null clears the column.
 */
export function assignments(
  patch: object,
  columns: Record<string, ColumnSpec>,
): { sql: string[]; params: unknown[] } {
  const sql: string[] = [];
  const params: unknown[] = [];
  for (const [field, value] of Object.entries(patch)) {
    const spec = columns[field];
    if (value === undefined || spec === undefined) continue;
    const [column, type] = spec.split(":");
    if (value === null) {
      sql.push(`${column} = null`);
    } else if (type === "jsonb") {
      sql.push(`${column} = ?::jsonb`);
      params.push(json(value));
    } else if (type === "text[]") {
      sql.push(`${column} = ?::text[]`);
      params.push(pgArray(value as string[]));
    } else {
      sql.push(`${column} = ?`);
      params.push(value);
    }
  }
  return { sql, params };
}

/** The SQLSTATE constraint name of a pg error, if any. */
export function constraintOf(err: unknown): string {
  const cause = (err as { cause?: { constraint?: unknown } })?.cause;
  const c = (err as { constraint?: unknown })?.constraint ?? cause?.constraint;
  return typeof c === "string" ? c : "";
}

/**
 * A row as the entity's plain properties, as `{ ...em.map(entity, row) }`
 * gives them (column names to property names, custom types such as json,
 * arrays and dates converted) but without creating a managed entity and
 * merging it into the fork's identity map: that cost more CPU than the query
 * itself and was the largest single item of `bench goals`.
 */
function mapRow(em: EntityManager, entity: AnyEntity, row: Row): Row {
  const meta = em.getMetadata().get(entity.meta.className);
  const data = em.getDriver().mapResult(row, meta) as Row;
  const platform = em.getPlatform();
  const out: Row = {};
  for (const key of Object.keys(data)) {
    const v = data[key];
    const type = meta.properties[key]?.customType;
    out[key] = type && v !== null && v !== undefined ? type.convertToJSValue(v, platform) : v;
  }
  return out;
}
