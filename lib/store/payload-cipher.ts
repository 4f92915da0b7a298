/**
 * Envelope encryption of tenant payloads at rest. Each tenant that turned
 * encryption on (`tenants.encryption`: `sensitive` seals the contract's
 * sensitive fields, `all` every payload a goal carries) has data keys
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
 * const sealed = await cipher.seal("acme", "goal.input", { ssn: "..." });
 * const input = await cipher.open("acme", "goal.input", sealed);
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { JsonValue } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { KeyWrapper } from "../secrets/secret-store.js";
import type { Db } from "./db.js";

export type EncryptionMode = "off" | "sensitive" | "all";
export const encryptionModes: readonly EncryptionMode[] = ["off", "sensitive", "all"];

/** Which payloads a mode seals: the contract's sensitive fields, or also every other payload. */
export type PayloadKind = "sensitive" | "other";

const prefix = "am1";
/** How long a tenant's mode and unwrapped data keys are kept in memory. */
const cacheMs = 5000;

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

  /** `keys` is asked only when a tenant encrypts (opening Vault is not needed otherwise). */
  constructor(db: Db, keys: () => Promise<KeyWrapper>) {
    this.#db = db;
    this.#keys = keys;
  }

  /** The tenant's encryption mode (cached for a few seconds). */
  async mode(tenantId: string): Promise<EncryptionMode> {
    return (await this.#state(tenantId)).mode;
  }

  async #state(tenantId: string): Promise<{ mode: EncryptionMode; erased: boolean }> {
    const hit = this.#modes.get(tenantId);
    if (hit && Date.now() - hit.at < cacheMs) return hit;
    const [row] = await this.#db.rows<{ encryption: EncryptionMode; erased_at: unknown }>(
      "select encryption, erased_at from tenants where id = ?",
      [tenantId],
    );
    const state = {
      mode: row?.encryption ?? "off",
      erased: Boolean(row?.erased_at),
      at: Date.now(),
    };
    this.#modes.set(tenantId, state);
    return state;
  }

  /** Forgets what is cached of a tenant (after its mode changed, a rotation or an erasure). */
  forget(tenantId: string): void {
    this.#modes.delete(tenantId);
    this.#current.delete(tenantId);
    for (const k of this.#dataKeys.keys())
      if (k.startsWith(`${tenantId}/`)) this.#dataKeys.delete(k);
  }

  /** `value` sealed when the tenant's mode covers this kind of payload, else as given. */
  async seal(
    tenantId: string,
    field: string,
    value: JsonValue,
    kind: PayloadKind = "sensitive",
  ): Promise<JsonValue> {
    const { mode, erased } = await this.#state(tenantId);
    if (erased) {
      // New keys would make an erased tenant's new payloads readable again.
      throw new MeshError(
        Code.FailedPrecondition,
        `tenant ${tenantId} was erased: nothing more is stored for it`,
      );
    }
    if (mode === "off" || (mode === "sensitive" && kind === "other")) return value;
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
    let version = hit && Date.now() - hit.at < cacheMs ? hit.version : undefined;
    if (version === undefined) {
      const [row] = await this.#db.rows<{ version: number | null }>(
        "select max(version) as version from tenant_data_keys where tenant_id = ?",
        [tenantId],
      );
      version = row?.version ?? undefined;
      if (version === undefined) {
        await this.#insertKey(tenantId, 1);
        version = 1;
      }
      this.#current.set(tenantId, { version, at: Date.now() });
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
    if (hit && Date.now() - hit.at < cacheMs) return hit.key;
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
    this.#dataKeys.set(id, { key, at: Date.now() });
    return key;
  }
}

/** A goal row as stored, with its input and output opened. */
export async function openGoal<G extends { tenantId: string; input: unknown; output?: unknown }>(
  cipher: PayloadCipher,
  goal: G,
): Promise<G> {
  if (!isSealed(goal.input) && !isSealed(goal.output)) return goal;
  return {
    ...goal,
    input: await cipher.open(goal.tenantId, "goal.input", goal.input as JsonValue),
    output: await cipher.open(goal.tenantId, "goal.output", (goal.output ?? null) as JsonValue),
  };
}

/** Events as they are stored: their data sealed when the tenant encrypts (step and goal outputs ride in it). */
export async function sealEvents<E extends { data?: JsonValue }>(
  cipher: PayloadCipher,
  tenantId: string,
  events: readonly E[],
): Promise<E[]> {
  if (events.length === 0 || (await cipher.mode(tenantId)) === "off") return [...events];
  return Promise.all(
    events.map(async (e) => ({
      ...e,
      data: await cipher.seal(tenantId, "goal_event.data", e.data ?? null),
    })),
  );
}
