/**
 * A tenant's API keys. Only a hash of the secret is stored (see
 * `api-key-secret.ts`); the gateway looks keys up by id across tenants with
 * `store.tenants.findApiKey(keyId)`.
 *
 * @example
 * const { keyId, secret, secretHash } = newApiKey();
 * await store.tenant(t).apiKeys.create({ keyId, secretHash, name: "ci", roles: ["goals.write"] });
 * // hand `secret` to the user once
 */
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import { constraintOf, type Db, requireText } from "./db.js";
import { ApiKeyEntity } from "./entities.js";
import type { ApiKeyRecord } from "./records.js";

export interface NewApiKey {
  keyId: string;
  name: string;
  roles?: string[];
  /** From `hashApiKeySecret()`. */
  secretHash: string;
  expiresAt?: Date | null;
}

export class ApiKeyRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
  ) {}

  /** Stores a key. ALREADY_EXISTS if the key id is taken; NOT_FOUND if the tenant does not exist. */
  async create(input: NewApiKey): Promise<ApiKeyRecord> {
    requireText(input.keyId, "key id", 64);
    requireText(input.name, "key name", 128);
    requireText(input.secretHash, "secret hash", 256);
    try {
      return await this.db.run(async (em) => {
        await em.insert(ApiKeyEntity, {
          keyId: input.keyId,
          tenantId: this.tenantId,
          name: input.name,
          roles: input.roles ?? [],
          secretHash: input.secretHash,
          expiresAt: input.expiresAt ?? null,
        });
        const row = await em.findOneOrFail(
          ApiKeyEntity,
          { keyId: input.keyId },
          { disableIdentityMap: true },
        );
        return { ...row } as ApiKeyRecord;
      });
    } catch (err) {
      const constraint = constraintOf(isMeshError(err) ? err.cause : err);
      if (constraint.includes("tenant_id_fkey")) {
        throw new MeshError(Code.NotFound, `tenant ${this.tenantId} not found`, { cause: err });
      }
      if (constraint === "api_keys_pkey") {
        throw new MeshError(Code.AlreadyExists, `API key ${input.keyId} exists`, { cause: err });
      }
      throw err;
    }
  }

  /** The tenant's keys, newest first. */
  async list(): Promise<ApiKeyRecord[]> {
    return this.db.run(async (em) => {
      const rows = await em.find(
        ApiKeyEntity,
        { tenantId: this.tenantId },
        { orderBy: { createdAt: "desc", keyId: "desc" }, disableIdentityMap: true },
      );
      return rows.map((r) => ({ ...r }) as ApiKeyRecord);
    });
  }

  /** Revokes a key (idempotent: the first revocation time is kept). NOT_FOUND if not the tenant's. */
  async revoke(keyId: string): Promise<ApiKeyRecord> {
    const rows = await this.db.mapped<ApiKeyRecord>(
      ApiKeyEntity,
      `update api_keys set revoked_at = coalesce(revoked_at, now())
       where tenant_id = ? and key_id = ? returning *`,
      [this.tenantId, keyId],
    );
    const [row] = rows;
    if (!row) throw new MeshError(Code.NotFound, `API key ${keyId} not found`);
    return row;
  }
}
