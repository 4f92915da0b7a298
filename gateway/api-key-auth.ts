/**
 * API key authentication against `lib/store`: the key id in the secret finds
 * the stored record, the secret is checked against its SHA-256 hash in
 * constant time, and revoked or expired keys are refused. Verified keys are
 * cached briefly (by the hash of the secret, never the secret itself) so the
 * hot path is a hash and a map lookup; revocations through this gateway drop
 * the cache entry at once, other replicas notice within `cacheTtlMs`.
 *
 * @example
 * const auth = apiKeyAuthenticator({ store });
 * const principal = await auth.verify("am_0123456789ab_...");
 */
import { create } from "@bufbuild/protobuf";
import { type Principal, PrincipalSchema } from "../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { hashApiKeySecret, parseApiKey, verifyApiKeySecret } from "../lib/store/api-key-secret.js";
import type { ApiKeyRecord } from "../lib/store/records.js";

/** The part of the store API keys are looked up in. */
export interface ApiKeyLookup {
  findApiKey(keyId: string): Promise<ApiKeyRecord | undefined>;
}

export interface ApiKeyAuthenticatorOptions {
  /** Where keys live (`store.tenants`). */
  keys: ApiKeyLookup;
  /** How long a verified key is trusted without a lookup. Default 5000 ms; 0 disables the cache. */
  cacheTtlMs?: number;
  /** Cache bound (entries). Default 10,000. */
  maxEntries?: number;
  /** Clock (tests). Default `Date.now`. */
  now?: () => number;
}

export interface ApiKeyAuthenticator {
  /** The principal of a well-formed, active key; UNAUTHENTICATED otherwise. */
  verify(secret: string): Promise<Principal>;
  /** Forgets cached verifications of `keyId` (after a revocation). */
  forget(keyId: string): void;
}

interface Cached {
  principal: Principal;
  keyId: string;
  until: number;
  expiresAt: number;
}

export function apiKeyAuthenticator(options: ApiKeyAuthenticatorOptions): ApiKeyAuthenticator {
  const { keys, cacheTtlMs = 5000, maxEntries = 10_000, now = Date.now } = options;
  const cache = new Map<string, Cached>();
  // Concurrent misses of one key share one lookup, so a cache expiry under load
  // is one query, not a stampede that drains the connection pool.
  const inflight = new Map<string, Promise<Principal>>();
  const lookup = async (secret: string, keyId: string, hash: string): Promise<Principal> => {
    let record: ApiKeyRecord | undefined;
    try {
      record = await keys.findApiKey(keyId);
    } catch (err) {
      throw new MeshError(Code.Unavailable, "cannot verify credentials right now", {
        cause: err,
      });
    }
    // One message for unknown keys and wrong secrets, so ids cannot be probed.
    if (!record || !verifyApiKeySecret(secret, record.secretHash)) {
      throw unauthenticated("invalid API key");
    }
    if (record.revokedAt) throw unauthenticated(`API key ${record.keyId} was revoked`);
    const expiresAt = record.expiresAt ? record.expiresAt.getTime() : Number.POSITIVE_INFINITY;
    const t = now();
    if (expiresAt <= t) throw unauthenticated(`API key ${record.keyId} expired`);
    const principal = create(PrincipalSchema, {
      tenantId: record.tenantId,
      subject: `key:${record.keyId}`,
      roles: [...record.roles],
    });
    if (cacheTtlMs > 0) {
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(hash, { principal, keyId: record.keyId, until: t + cacheTtlMs, expiresAt });
    }
    return principal;
  };
  return {
    verify(secret) {
      const parsed = parseApiKey(secret);
      if (!parsed) return Promise.reject(unauthenticated("malformed API key"));
      const hash = hashApiKeySecret(secret);
      const t = now();
      const hit = cache.get(hash);
      if (hit && hit.until > t && hit.expiresAt > t) return Promise.resolve(hit.principal);
      if (hit) cache.delete(hash);
      let pending = inflight.get(hash);
      if (pending === undefined) {
        pending = lookup(secret, parsed.keyId, hash).finally(() => inflight.delete(hash));
        inflight.set(hash, pending);
      }
      return pending;
    },
    forget(keyId) {
      for (const [hash, entry] of cache) if (entry.keyId === keyId) cache.delete(hash);
    },
  };
}

export function unauthenticated(message: string): MeshError {
  return new MeshError(Code.Unauthenticated, message);
}
