/**
 * Tenants themselves (platform level: the admin service creates them) and the
 * gateway's cross-tenant API key lookup.
 *
 * @example
 * await store.tenants.create({ id: "acme", displayName: "Acme Corp" });
 * const key = await store.tenants.findApiKey(parseApiKey(secret)!.keyId);
 */

import type { JsonObject } from "@bufbuild/protobuf";
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import { nameRules } from "../proto/name-rules.js";
import {
  assignments,
  constraintOf,
  type Db,
  decodeToken,
  encodeToken,
  json,
  pageSize,
  requireText,
} from "./db.js";
import { ApiKeyEntity, TenantEntity } from "./entities.js";
import { type EncryptionMode, encryptionModes } from "./payload-cipher.js";
import type { ApiKeyRecord, TenantRecord } from "./records.js";

/** What a tenant id must look like: lowercase letters, digits and dashes, 1-63 characters (the contract's rule). */
export const tenantIdPattern = nameRules.tenantId.pattern;

/** Throws INVALID_ARGUMENT unless `tenantId` is a well-formed tenant id. */
export function checkTenantId(tenantId: unknown): string {
  if (typeof tenantId !== "string" || tenantId === "") {
    throw new MeshError(Code.InvalidArgument, "tenant id is required");
  }
  if (!tenantIdPattern.test(tenantId)) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid tenant id ${JSON.stringify(tenantId.slice(0, 80))}: use lowercase letters, digits and dashes`,
    );
  }
  return tenantId;
}

export interface NewTenant {
  id: string;
  displayName: string;
  rateLimitPerSecond?: number;
  maxConcurrentStreams?: number;
  limits?: JsonObject;
}

export type TenantPatch = Partial<Omit<NewTenant, "id">> & {
  /** Null resumes the tenant. */
  suspendedAt?: Date | null;
  suspendedReason?: string;
};

const patchColumns = {
  displayName: "display_name",
  rateLimitPerSecond: "rate_limit_per_second",
  maxConcurrentStreams: "max_concurrent_streams",
  limits: "limits:jsonb",
  suspendedAt: "suspended_at",
  suspendedReason: "suspended_reason",
};

/** Goal statuses that are not finished. */
export const inFlightStatuses = ["PENDING", "PLANNING", "RUNNING"] as const;

export class TenantRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Creates a tenant; ALREADY_EXISTS if the id is taken. */
  async create(input: NewTenant): Promise<TenantRecord> {
    checkTenantId(input.id);
    requireText(input.displayName, "display name", 256);
    try {
      const [row] = await this.db.mapped<TenantRecord>(
        TenantEntity,
        `insert into tenants (id, display_name, rate_limit_per_second, max_concurrent_streams, limits)
         values (?, ?, ?, ?, ?::jsonb) returning *`,
        [
          input.id,
          input.displayName,
          input.rateLimitPerSecond ?? 0,
          input.maxConcurrentStreams ?? 0,
          json(input.limits ?? {}),
        ],
      );
      return row as TenantRecord;
    } catch (err) {
      if (constraintOf(isMeshError(err) ? err.cause : err) === "tenants_pkey") {
        throw new MeshError(Code.AlreadyExists, `tenant ${input.id} exists`, { cause: err });
      }
      throw err;
    }
  }

  /** The tenant, or undefined. */
  async find(id: string): Promise<TenantRecord | undefined> {
    checkTenantId(id);
    const [row] = await this.db.mapped<TenantRecord>(
      TenantEntity,
      "select * from tenants where id = ?",
      [id],
    );
    return row;
  }

  /** The tenant, or NOT_FOUND. */
  async get(id: string): Promise<TenantRecord> {
    const row = await this.find(id);
    if (!row) throw new MeshError(Code.NotFound, `tenant ${id} not found`);
    return row;
  }

  /** One page of tenants by id. */
  async list(
    options: { pageSize?: number; pageToken?: string } = {},
  ): Promise<{ tenants: TenantRecord[]; nextPageToken: string }> {
    const size = pageSize(options.pageSize);
    const after = options.pageToken ? String(decodeToken(options.pageToken, 1)[0]) : "";
    const rows = await this.db.mapped<TenantRecord>(
      TenantEntity,
      "select * from tenants where id > ? order by id limit ?",
      [after, size + 1],
    );
    const tenants = rows.slice(0, size);
    const last = tenants[tenants.length - 1];
    return { tenants, nextPageToken: rows.length > size && last ? encodeToken([last.id]) : "" };
  }

  /** Changes a tenant's name or limits; NOT_FOUND if it does not exist. */
  async update(id: string, patch: TenantPatch): Promise<TenantRecord> {
    checkTenantId(id);
    const set = assignments(patch, patchColumns);
    const [row] = await this.db.mapped<TenantRecord>(
      TenantEntity,
      `update tenants set ${[...set.sql, "updated_at = now()"].join(", ")} where id = ? returning *`,
      [...set.params, id],
    );
    if (!row) throw new MeshError(Code.NotFound, `tenant ${id} not found`);
    return row;
  }

  /** How many of the tenant's goals are in each status (statuses without goals absent). */
  async goalCounts(id: string): Promise<Record<string, number>> {
    checkTenantId(id);
    const rows = await this.db.rows<{ status: string; n: string }>(
      "select status, count(*) as n from goals where tenant_id = ? group by status",
      [id],
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  /**
   * Serialises goal admission for one tenant until the transaction ends (call
   * inside `store.transaction`), so an in-flight count read after it is exact.
   */
  async lockGoalAdmission(id: string): Promise<void> {
    checkTenantId(id);
    await this.db.rows("select pg_advisory_xact_lock(hashtextextended(?, 20)) as locked", [
      `goals:${id}`,
    ]);
  }

  /** How many of the tenant's goals are not finished (an index-only count). */
  async goalsInFlight(id: string): Promise<number> {
    checkTenantId(id);
    const [row] = await this.db.rows<{ n: string }>(
      `select count(*) as n from goals where tenant_id = ? and status in ('PENDING','PLANNING','RUNNING')`,
      [id],
    );
    return Number(row?.n ?? 0);
  }

  /** Sets which payloads of the tenant are encrypted at rest from now on; NOT_FOUND if it does not exist. */
  async setEncryption(id: string, mode: EncryptionMode): Promise<void> {
    checkTenantId(id);
    if (!encryptionModes.includes(mode)) {
      throw new MeshError(
        Code.InvalidArgument,
        `encryption must be one of ${encryptionModes.join(", ")}`,
      );
    }
    const rows = await this.db.rows(
      "update tenants set encryption = ?, updated_at = now() where id = ? returning id",
      [mode, id],
    );
    if (rows.length === 0) throw new MeshError(Code.NotFound, `tenant ${id} not found`);
  }

  /** The tenant's encryption mode and when its keys were erased, if they were. */
  async protection(id: string): Promise<{ encryption: EncryptionMode; erasedAt: Date | null }> {
    checkTenantId(id);
    const [row] = await this.db.rows<{ encryption: EncryptionMode; erased_at: Date | null }>(
      "select encryption, erased_at from tenants where id = ?",
      [id],
    );
    if (!row) throw new MeshError(Code.NotFound, `tenant ${id} not found`);
    return {
      encryption: row.encryption,
      erasedAt: row.erased_at === null ? null : new Date(row.erased_at),
    };
  }

  /** Keeps the tenant's finished goals `days` days (undefined: forever); pins its data to `region` (undefined: any). */
  async setRetention(
    id: string,
    change: { days?: number | null; region?: string | null },
  ): Promise<void> {
    checkTenantId(id);
    const { days, region } = change;
    if (
      days !== undefined &&
      days !== null &&
      (!Number.isInteger(days) || days <= 0 || days > 36_500)
    ) {
      throw new MeshError(
        Code.InvalidArgument,
        "retention must be a whole number of days, 1-36500",
      );
    }
    if (region !== undefined && region !== null && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(region)) {
      throw new MeshError(
        Code.InvalidArgument,
        "a region is lower-case letters, digits and dashes",
      );
    }
    const sets: string[] = [];
    const params: unknown[] = [];
    if (days !== undefined) {
      sets.push("retention_days = ?");
      params.push(days);
    }
    if (region !== undefined) {
      sets.push("region = ?");
      params.push(region);
    }
    if (sets.length === 0) return;
    const rows = await this.db.rows(
      `update tenants set ${sets.join(", ")}, updated_at = now() where id = ? returning id`,
      [...params, id],
    );
    if (rows.length === 0) throw new MeshError(Code.NotFound, `tenant ${id} not found`);
  }

  /** Tenants with a retention period. */
  async withRetention(): Promise<{ id: string; retentionDays: number }[]> {
    const rows = await this.db.rows<{ id: string; retention_days: number }>(
      "select id, retention_days from tenants where retention_days is not null order by id",
    );
    return rows.map((r) => ({ id: r.id, retentionDays: Number(r.retention_days) }));
  }

  /** Tenants whose keys were erased. */
  async erased(): Promise<string[]> {
    const rows = await this.db.rows<{ id: string }>(
      "select id from tenants where erased_at is not null order by id",
    );
    return rows.map((r) => r.id);
  }

  /** Tenants pinned to a region other than `region`. */
  async pinnedElsewhere(region: string): Promise<{ id: string; region: string }[]> {
    return this.db.rows<{ id: string; region: string }>(
      "select id, region from tenants where region is not null and region <> ? order by id",
      [region],
    );
  }

  /** Deletes up to `limit` of the tenant's goals finished before `before` (plans, steps, events cascade); how many. */
  async purgeGoals(id: string, before: Date, limit: number): Promise<number> {
    const rows = await this.db.rows(
      `delete from goals where id in (
         select id from goals g where tenant_id = ? and finished_at < ?
           -- a parent goes once its sub-goals are gone (the next batch)
           and not exists (select 1 from goals c where c.parent_goal_id = g.id)
         order by finished_at limit ? for update skip locked)
       returning id`,
      [id, before, limit],
    );
    return rows.length;
  }

  /** Deletes up to `limit` of the tenant's experiences recorded before `before`; how many. */
  async purgeExperiences(id: string, before: Date, limit: number): Promise<number> {
    const rows = await this.db.rows(
      `delete from experiences where goal_id in (
         select goal_id from experiences where tenant_id = ? and created_at < ?
         order by created_at limit ? for update skip locked)
       returning goal_id`,
      [id, before, limit],
    );
    return rows.length;
  }

  /** Records that the tenant's data keys were destroyed. */
  async markErased(id: string): Promise<void> {
    checkTenantId(id);
    await this.db.rows("update tenants set erased_at = now(), updated_at = now() where id = ?", [
      id,
    ]);
  }

  /** How many of the tenant's goals hold payloads stored in clear (before encryption was on, or with it off). */
  async countPlaintextGoals(id: string): Promise<number> {
    checkTenantId(id);
    const [row] = await this.db.rows<{ n: number }>(
      "select count(*)::int as n from goals where tenant_id = ? and input->'$sealed' is null",
      [id],
    );
    return row?.n ?? 0;
  }

  /**
   * The API key with this id in any tenant, or undefined: the gateway's
   * lookup before it knows the tenant. Check `revokedAt`, `expiresAt` and the
   * secret hash before trusting it.
   */
  async findApiKey(keyId: string): Promise<ApiKeyRecord | undefined> {
    if (typeof keyId !== "string" || keyId === "" || keyId.length > 64) return undefined;
    const [row] = await this.db.mapped<ApiKeyRecord>(
      ApiKeyEntity,
      "select * from api_keys where key_id = ?",
      [keyId],
    );
    return row;
  }
}
