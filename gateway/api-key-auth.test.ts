import { describe, expect, it } from "vitest";
import { newApiKey } from "../lib/store/api-key-secret.js";
import type { ApiKeyRecord } from "../lib/store/records.js";
import { apiKeyAuthenticator } from "./api-key-auth.js";

function store(record: Partial<ApiKeyRecord> & { keyId: string; secretHash: string }) {
  let lookups = 0;
  return {
    get lookups() {
      return lookups;
    },
    /** Set to make lookups fail as an unreachable database would. */
    down: false,
    async findApiKey(keyId: string): Promise<ApiKeyRecord | undefined> {
      lookups++;
      await new Promise((r) => setTimeout(r, 5));
      if (this.down) throw new Error("connect ECONNREFUSED");
      return keyId === record.keyId
        ? {
            tenantId: "acme",
            name: "k",
            roles: ["goals.read"],
            createdAt: new Date(),
            expiresAt: null,
            revokedAt: null,
            ...record,
          }
        : undefined;
    },
  };
}

describe("apiKeyAuthenticator", () => {
  it("shares one lookup among concurrent misses and caches the result", async () => {
    const k = newApiKey();
    const keys = store({ keyId: k.keyId, secretHash: k.secretHash });
    const auth = apiKeyAuthenticator({ keys });
    const principals = await Promise.all(Array.from({ length: 50 }, () => auth.verify(k.secret)));
    expect(principals.every((p) => p.tenantId === "acme" && p.subject === `key:${k.keyId}`)).toBe(
      true,
    );
    expect(keys.lookups).toBe(1);
    await auth.verify(k.secret);
    expect(keys.lookups).toBe(1);
    auth.forget(k.keyId);
    await auth.verify(k.secret);
    expect(keys.lookups).toBe(2);
  });

  it("refuses malformed, unknown, wrong, revoked and expired keys alike as UNAUTHENTICATED", async () => {
    const k = newApiKey();
    const other = newApiKey();
    const codes = async (keys: ReturnType<typeof store>, secret: string) =>
      apiKeyAuthenticator({ keys })
        .verify(secret)
        .then(
          () => "ok",
          (e: { codeName: string; message: string }) => `${e.codeName}: ${e.message}`,
        );
    const good = store({ keyId: k.keyId, secretHash: k.secretHash });
    expect(await codes(good, "nope")).toBe("UNAUTHENTICATED: malformed API key");
    expect(await codes(good, other.secret)).toBe("UNAUTHENTICATED: invalid API key");
    expect(await codes(store({ keyId: k.keyId, secretHash: other.secretHash }), k.secret)).toBe(
      "UNAUTHENTICATED: invalid API key",
    );
    expect(
      await codes(
        store({ keyId: k.keyId, secretHash: k.secretHash, revokedAt: new Date() }),
        k.secret,
      ),
    ).toMatch(/revoked/);
    expect(
      await codes(
        store({ keyId: k.keyId, secretHash: k.secretHash, expiresAt: new Date(Date.now() - 1) }),
        k.secret,
      ),
    ).toMatch(/expired/);
  });

  it("keeps a busy key working past its TTL while it is re-verified, and drops it once revoked", async () => {
    const k = newApiKey();
    const keys = store({ keyId: k.keyId, secretHash: k.secretHash });
    let t = 1_000_000;
    const auth = apiKeyAuthenticator({ keys, cacheTtlMs: 5000, staleMs: 30_000, now: () => t });
    await auth.verify(k.secret);
    expect(keys.lookups).toBe(1);
    // Revoked through another replica; this one's entry has gone stale.
    const revoked = store({ keyId: k.keyId, secretHash: k.secretHash, revokedAt: new Date() });
    keys.findApiKey = revoked.findApiKey.bind(revoked);
    t += 6000;
    // Accepted at once (no wait on the store), re-checked in the background...
    expect((await auth.verify(k.secret)).tenantId).toBe("acme");
    await new Promise((r) => setTimeout(r, 20));
    // ...which found the revocation.
    const err = await auth.verify(k.secret).catch((e: { codeName: string }) => e.codeName);
    expect(err).toBe("UNAUTHENTICATED");
  });

  it("serves known keys for staleMs while the store is down, then UNAVAILABLE", async () => {
    const k = newApiKey();
    const keys = store({ keyId: k.keyId, secretHash: k.secretHash });
    let t = 1_000_000;
    const auth = apiKeyAuthenticator({ keys, cacheTtlMs: 5000, staleMs: 30_000, now: () => t });
    await auth.verify(k.secret);
    keys.down = true;
    t += 20_000;
    expect((await auth.verify(k.secret)).tenantId).toBe("acme");
    await new Promise((r) => setTimeout(r, 20));
    expect((await auth.verify(k.secret)).tenantId).toBe("acme"); // a failed re-check keeps it
    t += 20_000; // past TTL + staleMs
    const err = await auth.verify(k.secret).catch((e: { codeName: string }) => e.codeName);
    expect(err).toBe("UNAVAILABLE");
    keys.down = false;
    expect((await auth.verify(k.secret)).tenantId).toBe("acme");
  });
});
