/**
 * Envelope encryption of tenant payloads at rest. Each tenant that turned
 * encryption on (`tenants.encryption`: `sensitive` seals the fields the
 * contract marks sensitive, `all` every payload column of `payload-columns.ts`
 * whole) has data keys
 * (AES-256-GCM, 32 random bytes) stored only wrapped by a key-encryption key
 * the database never sees (`SecretStore.keys`: a file KEK or Vault Transit).
 * A sealed value is stored in its JSON column as
 * `{"$sealed": "am1.<key version>.<base64 iv|ciphertext|tag>"}`, bound to its
 * tenant and field (as AES-GCM associated data) so it cannot be moved.
 *
 * Rotation re-wraps the tenant's data keys under the newest KEK and starts a
 * new data key for new writes; old payloads keep their key version and stay
 * readable. Erasure deletes the tenant's data keys: every sealed payload of
 * that tenant becomes unreadable (crypto-shredding).
 *
 * @example
 * const sealed = await cipher.sealPayload("acme", payloadColumns.goalInput, { ssn: "..." });
 * const input = await cipher.openPayload("acme", payloadColumns.goalInput, sealed);
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import { isSensitive, type JsonPath, sensitiveJsonPaths } from "../proto/sensitive-fields.js";
import type { KeyWrapper } from "../secrets/secret-store.js";
import type { Db } from "./db.js";
import { type PayloadColumn, payloadColumns } from "./payload-columns.js";
import type { TenantKeyFeed } from "./tenant-key-feed.js";

export type EncryptionMode = "off" | "sensitive" | "all";
export const encryptionModes: readonly EncryptionMode[] = ["off", "sensitive", "all"];

const prefix = "am1";
/**
 * How long a tenant's mode and unwrapped data keys are kept in memory while
 * the feed is not live (a change made elsewhere is missed at most this long),
 * and while it is (a change reaches it at once; this only bounds a change
 * made around the mesh, e.g. by SQL).
 */
const cacheMs = 5000;
const liveCacheMs = 10 * 60_000;

interface DataKey {
  version: number;
  key: Buffer;
}

export function isSealed(value: unknown): value is { $sealed: string } {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    typeof (value as { $sealed?: unknown }).$sealed === "string" &&
    Object.keys(value).length === 1
  );
}

export class PayloadCipher {
  readonly #db: Db;
  readonly #keys: () => Promise<KeyWrapper>;
  readonly #modes = new Map<string, { mode: EncryptionMode; erased: boolean; at: number }>();
  readonly #dataKeys = new Map<string, { key: Buffer; at: number }>();
  readonly #current = new Map<string, { version: number; at: number }>();
  readonly #feed: TenantKeyFeed | undefined;
  /** Bumped by every `forget`: a lookup that started before one is not cached. */
  #generation = 0;

  /**
   * `keys` is asked only when a tenant encrypts (opening Vault is not needed
   * otherwise); `feed`, started on first use, tells of changes made by other
   * processes (see `changed`).
   */
  constructor(db: Db, keys: () => Promise<KeyWrapper>, feed?: TenantKeyFeed) {
    this.#db = db;
    this.#keys = keys;
    this.#feed = feed;
  }

  /** Whether changes made by other processes reach this one at once (its feed is live). */
  get hearsChanges(): boolean {
    return this.#feed?.live ?? false;
  }

  /** The tenant's encryption mode (cached for a few seconds). */
  async mode(tenantId: string): Promise<EncryptionMode> {
    return (await this.#state(tenantId)).mode;
  }

  async #state(tenantId: string): Promise<{ mode: EncryptionMode; erased: boolean }> {
    if (this.#feed) await this.#feed.start();
    const hit = this.#modes.get(tenantId);
    if (hit && this.#fresh(hit.at)) return hit;
    const generation = this.#generation;
    const [row] = await this.#db.rows<{ encryption: EncryptionMode; erased_at: unknown }>(
      "select encryption, erased_at from tenants where id = ?",
      [tenantId],
    );
    const state = {
      mode: row?.encryption ?? "off",
      erased: Boolean(row?.erased_at),
      at: Date.now(),
    };
    if (generation === this.#generation) this.#modes.set(tenantId, state);
    return state;
  }

  /**
   * Forgets what this process and every other one cached of the tenant, after
   * its mode, its keys or its erasure committed: at once in each process whose
   * feed is live, and here in any case.
   */
  async changed(tenantId: string): Promise<void> {
    this.forget(tenantId);
    await this.#feed?.announce(tenantId);
  }

  #fresh(at: number): boolean {
    return Date.now() - at < (this.#feed?.live ? liveCacheMs : cacheMs);
  }

  /** Forgets what is cached of every tenant. */
  forgetAll(): void {
    this.#generation++;
    this.#modes.clear();
    this.#current.clear();
    this.#dataKeys.clear();
  }

  /** Forgets what this process cached of a tenant (see `changed` for every process). */
  forget(tenantId: string): void {
    this.#generation++;
    this.#modes.delete(tenantId);
    this.#current.delete(tenantId);
    for (const k of this.#dataKeys.keys())
      if (k.startsWith(`${tenantId}/`)) this.#dataKeys.delete(k);
  }

  /**
   * `value` of `column` as the tenant's mode stores it: as given (`off`),
   * sealed whole (`all`, or `sensitive` when the column holds a field the
   * contract marks sensitive), or with just the sensitive fields of the
   * message it holds sealed (`sensitive`). FAILED_PRECONDITION for an erased
   * tenant, whatever its mode: nothing more is stored for it.
   */
  async sealPayload(tenantId: string, column: PayloadColumn, value: JsonValue): Promise<JsonValue> {
    const { mode } = await this.#writable(tenantId);
    if (mode === "off") return value;
    if (mode === "all" || sealedWhole(column)) return this.#seal(tenantId, column.name, value);
    const holds = column.holds;
    if (!holds || !("message" in holds)) return value;
    const paths = sensitiveJsonPaths(holds.message, value);
    if (paths.length === 0) return value;
    type Node = Record<string | number, JsonValue>;
    const out = structuredClone(value);
    for (const path of paths) {
      const parent = path.slice(0, -1).reduce((v, k) => v[k] as Node, out as Node);
      const key = path[path.length - 1] as string | number;
      parent[key] = await this.#seal(tenantId, fieldAt(column, path), parent[key] ?? null);
    }
    return out;
  }

  /** Whether the tenant's mode stores this column sealed whole (so a text column can be left empty). */
  async sealsWhole(tenantId: string, column: PayloadColumn): Promise<boolean> {
    const { mode } = await this.#writable(tenantId);
    return mode === "all" || (mode === "sensitive" && sealedWhole(column));
  }

  /**
   * `stored` of `column` with every sealed value in it opened (sealed whole or
   * field by field); as stored when nothing in it is sealed. FAILED_PRECONDITION
   * when its data key is gone (the tenant was erased).
   */
  async openPayload<T extends JsonValue | null | undefined>(
    tenantId: string,
    column: PayloadColumn,
    stored: T,
  ): Promise<T> {
    if (!hasSealed(stored)) return stored;
    const walk = async (v: JsonValue, path: JsonPath): Promise<JsonValue> => {
      if (isSealed(v)) return this.open(tenantId, fieldAt(column, path), v);
      if (Array.isArray(v)) return Promise.all(v.map((x, i) => walk(x, [...path, i])));
      if (typeof v !== "object" || v === null || !hasSealed(v)) return v;
      const out: Record<string, JsonValue> = {};
      for (const [k, x] of Object.entries(v)) out[k] = await walk(x, [...path, k]);
      return out;
    };
    return (await walk(stored as JsonValue, [])) as T;
  }

  async #writable(tenantId: string): Promise<{ mode: EncryptionMode }> {
    const state = await this.#state(tenantId);
    if (state.erased) {
      // New keys would make an erased tenant's new payloads readable again.
      throw new MeshError(
        Code.FailedPrecondition,
        `tenant ${tenantId} was erased: nothing more is stored for it`,
      );
    }
    return state;
  }

  async #seal(tenantId: string, field: string, value: JsonValue): Promise<JsonValue> {
    const { version, key } = await this.#currentKey(tenantId);
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(`${tenantId}\u0000${field}`));
    const body = Buffer.concat([
      iv,
      cipher.update(JSON.stringify(value), "utf8"),
      cipher.final(),
      cipher.getAuthTag(),
    ]);
    return { $sealed: `${prefix}.${version}.${body.toString("base64")}` };
  }

  /** The plaintext of a sealed value; anything else as stored. FAILED_PRECONDITION when its key is gone. */
  async open<T extends JsonValue | null | undefined>(
    tenantId: string,
    field: string,
    stored: T,
  ): Promise<T> {
    if (!isSealed(stored)) return stored;
    const m = /^am1\.(\d+)\.([A-Za-z0-9+/=]+)$/.exec(stored.$sealed);
    if (!m)
      throw new MeshError(Code.DataLoss, `${field} of tenant ${tenantId} is not a sealed value`);
    const key = await this.#keyVersion(tenantId, Number(m[1]));
    const body = Buffer.from(m[2] as string, "base64");
    try {
      const d = createDecipheriv("aes-256-gcm", key, body.subarray(0, 12));
      d.setAAD(Buffer.from(`${tenantId}\u0000${field}`));
      d.setAuthTag(body.subarray(body.length - 16));
      const text = Buffer.concat([d.update(body.subarray(12, body.length - 16)), d.final()]);
      return JSON.parse(text.toString("utf8")) as T;
    } catch {
      throw new MeshError(Code.DataLoss, `${field} of tenant ${tenantId} failed authentication`);
    }
  }

  /**
   * Re-wraps every data key of the tenant under the newest key-encryption
   * key and starts a new data key for new writes; returns the new version.
   * Payloads are not re-encrypted: each keeps the key version it names.
   */
  async rotate(tenantId: string): Promise<number> {
    const keys = await this.#keys();
    const rows = await this.#db.rows<{ version: number; wrapped: string }>(
      "select version, wrapped from tenant_data_keys where tenant_id = ? order by version",
      [tenantId],
    );
    for (const r of rows) {
      const rewrapped = await keys.rewrap(r.wrapped);
      await this.#db.rows(
        "update tenant_data_keys set wrapped = ? where tenant_id = ? and version = ?",
        [rewrapped, tenantId, r.version],
      );
    }
    const next = (rows[rows.length - 1]?.version ?? 0) + 1;
    await this.#insertKey(tenantId, next);
    this.forget(tenantId);
    return next;
  }

  /** Deletes the tenant's data keys (crypto-shredding); returns how many there were. */
  async erase(tenantId: string): Promise<number> {
    const rows = await this.#db.rows(
      "delete from tenant_data_keys where tenant_id = ? returning version",
      [tenantId],
    );
    this.forget(tenantId);
    return rows.length;
  }

  async #currentKey(tenantId: string): Promise<DataKey> {
    const hit = this.#current.get(tenantId);
    let version = hit && this.#fresh(hit.at) ? hit.version : undefined;
    if (version === undefined) {
      const generation = this.#generation;
      const [row] = await this.#db.rows<{ version: number | null }>(
        "select max(version) as version from tenant_data_keys where tenant_id = ?",
        [tenantId],
      );
      version = row?.version ?? undefined;
      if (version === undefined) {
        await this.#insertKey(tenantId, 1);
        version = 1;
      }
      if (generation === this.#generation) this.#current.set(tenantId, { version, at: Date.now() });
    }
    return { version, key: await this.#keyVersion(tenantId, version) };
  }

  /** A new data key, wrapped; of two writers of the same version the first wins. */
  async #insertKey(tenantId: string, version: number): Promise<void> {
    const wrapped = await (await this.#keys()).wrap(randomBytes(32));
    await this.#db.rows(
      `insert into tenant_data_keys (tenant_id, version, wrapped) values (?, ?, ?)
       on conflict (tenant_id, version) do nothing`,
      [tenantId, version, wrapped],
    );
  }

  async #keyVersion(tenantId: string, version: number): Promise<Buffer> {
    const id = `${tenantId}/${version}`;
    const hit = this.#dataKeys.get(id);
    if (hit && this.#fresh(hit.at)) return hit.key;
    const generation = this.#generation;
    const [row] = await this.#db.rows<{ wrapped: string }>(
      "select wrapped from tenant_data_keys where tenant_id = ? and version = ?",
      [tenantId, version],
    );
    if (!row) {
      throw new MeshError(
        Code.FailedPrecondition,
        `tenant ${tenantId}'s data key v${version} does not exist (erased?): its payloads cannot be read`,
      );
    }
    const key = await (await this.#keys()).unwrap(row.wrapped);
    if (generation === this.#generation) this.#dataKeys.set(id, { key, at: Date.now() });
    return key;
  }
}

/** Whether `column` holds a field the contract marks sensitive (so `sensitive` mode seals it whole). */
function sealedWhole(column: PayloadColumn): boolean {
  return column.holds !== undefined && "field" in column.holds && isSensitive(column.holds.field);
}

/**
 * The field a sealed value is bound to: the column for a value sealed whole
 * (`goal.input`), else the column and the value's place in it
 * (`goal_event.data["stepSucceeded"]["output"]`), so no sealed value can be
 * moved to another column or place.
 */
function fieldAt(column: PayloadColumn, path: JsonPath): string {
  return column.name + path.map((k) => `[${JSON.stringify(k)}]`).join("");
}

/** Whether a sealed value is anywhere in `v`. */
function hasSealed(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return false;
  if (isSealed(v)) return true;
  for (const x of Array.isArray(v) ? v : Object.values(v)) if (hasSealed(x)) return true;
  return false;
}

/** A goal row as stored, with its input, output and error opened. */
export async function openGoal<
  G extends { tenantId: string; input: unknown; output?: unknown; error?: unknown },
>(cipher: PayloadCipher, goal: G): Promise<G> {
  if (!hasSealed(goal.input) && !hasSealed(goal.output) && !hasSealed(goal.error)) return goal;
  const c = payloadColumns;
  return {
    ...goal,
    input: await cipher.openPayload(goal.tenantId, c.goalInput, goal.input as JsonValue),
    output: await cipher.openPayload(
      goal.tenantId,
      c.goalOutput,
      (goal.output ?? null) as JsonValue,
    ),
    error: await cipher.openPayload(goal.tenantId, c.goalError, (goal.error ?? null) as JsonValue),
  };
}

/** Events as they are stored: their data (`GoalEvent` JSON) sealed as the tenant's mode says. */
export async function sealEvents<E extends { data?: JsonValue }>(
  cipher: PayloadCipher,
  tenantId: string,
  events: readonly E[],
): Promise<E[]> {
  if (events.length === 0) return [];
  return Promise.all(
    events.map(async (e) => ({
      ...e,
      data: await cipher.sealPayload(tenantId, payloadColumns.eventData, e.data ?? null),
    })),
  );
}
