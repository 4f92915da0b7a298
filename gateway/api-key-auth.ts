/**
 * API key authentication against `lib/store`: the key id in the secret finds
 * the stored record, the secret is checked against its SHA-256 hash in
 * constant time, and revoked or expired keys are refused. Verified keys are
 * cached briefly (by the hash of the secret — which covers the key id — never
 * the secret itself) so the hot path is a hash and a map lookup.
 *
 * Revocation: through this gateway (AdminService) it drops the cache entry at
 * once. Through another replica it takes effect here within `cacheTtlMs` plus
 * one store round trip: a key used after `cacheTtlMs` is still accepted while
 * it is re-verified in the background, so a busy key never makes requests wait
 * on the store, and the first answer that it is revoked, expired or gone drops
 * it. A key's own expiry time is checked on every call. If the store cannot be
 * reached, known keys keep working for `staleMs` past their TTL, then calls
 * fail UNAVAILABLE until it answers.
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
  /** How long after `cacheTtlMs` a key is still accepted while it is re-verified. Default 30,000 ms. */
  staleMs?: number;
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
  /** Fresh until; then accepted while re-verified until `staleUntil`. */
  until: number;
  staleUntil: number;
  expiresAt: number;
}

export function apiKeyAuthenticator(options: ApiKeyAuthenticatorOptions): ApiKeyAuthenticator {
  const {
    keys,
    cacheTtlMs = 5000,
    staleMs = 30_000,
    maxEntries = 10_000,
    now = Date.now,
  } = options;
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
      cache.delete(hash); // re-inserted last: the oldest entries go first when full
      if (cache.size >= maxEntries) cache.delete(cache.keys().next().value as string);
      cache.set(hash, {
        principal,
        keyId: record.keyId,
        until: t + cacheTtlMs,
        staleUntil: t + cacheTtlMs + staleMs,
        expiresAt,
      });
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
      const recheck = () => {
        let pending = inflight.get(hash);
        if (pending === undefined) {
          pending = lookup(secret, parsed.keyId, hash).finally(() => inflight.delete(hash));
          inflight.set(hash, pending);
        }
        return pending;
      };
      if (hit && hit.expiresAt > t) {
        if (hit.until > t) return Promise.resolve(hit.principal);
        if (hit.staleUntil > t) {
          // Accepted now, re-verified meanwhile; a refusal drops it, an unreachable store does not.
          recheck().catch((err: unknown) => {
            if (MeshError.from(err).code === Code.Unauthenticated) cache.delete(hash);
          });
          return Promise.resolve(hit.principal);
        }
      }
      if (hit) cache.delete(hash);
      return recheck();
    },
    forget(keyId) {
      for (const [hash, entry] of cache) if (entry.keyId === keyId) cache.delete(hash);
    },
  };
}

export function unauthenticated(message: string): MeshError {
  return new MeshError(Code.Unauthenticated, message);
}
