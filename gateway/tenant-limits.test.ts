import { describe, expect, it } from "vitest";
import { isMeshError } from "../lib/errors/mesh-error.js";
import { createTenantLimits } from "./tenant-limits.js";

const refusals = async (admit: () => Promise<void>, n: number) => {
  let refused = 0;
  for (let i = 0; i < n; i++) {
    await admit().catch((err: unknown) => {
      if (!isMeshError(err)) throw err;
      refused++;
    });
  }
  return refused;
};

describe("tenant limits with a shared bucket", () => {
  const clock = { t: 0 };
  const now = () => clock.t;

  it("falls back to the replica's own bucket when the shared one fails (fail open, bounded)", async () => {
    const failures: unknown[] = [];
    const limits = createTenantLimits({
      defaultRatePerSecond: 5,
      burstSeconds: 1,
      now,
      shared: {
        take: () => Promise.reject(new Error("database away")),
        onFallback: (err) => failures.push(err),
      },
    });
    // The local bucket's 5, then refusals: never unlimited.
    expect(await refusals(() => limits.admit("acme"), 8)).toBe(3);
    expect(failures).toHaveLength(8);
  });

  it("skips the shared bucket while the store is known to be away", async () => {
    let takes = 0;
    const limits = createTenantLimits({
      defaultRatePerSecond: 5,
      burstSeconds: 1,
      now,
      shared: {
        take: async () => {
          takes++;
          return { admitted: true, granted: 1, tokens: 0, retryAfterMs: 0 };
        },
        available: () => false,
      },
    });
    expect(await refusals(() => limits.admit("acme"), 6)).toBe(1);
    expect(takes).toBe(0);
  });

  it("spends a lease of several tokens locally and refuses with the bucket's hint", async () => {
    const wants: number[] = [];
    let left = 40;
    const limits = createTenantLimits({
      defaultRatePerSecond: 200,
      now,
      shared: {
        take: async (_key, _shape, want) => {
          wants.push(want);
          const granted = Math.min(want, left);
          left -= granted;
          return { admitted: granted >= 1, granted, tokens: 0.5, retryAfterMs: 3 };
        },
      },
    });
    // 200/s × 50 ms = 10 tokens per statement: 40 requests, 4 statements, then refused.
    expect(await refusals(() => limits.admit("acme"), 40)).toBe(0);
    expect(wants).toEqual([10, 10, 10, 10]);
    const err = await limits.admit("acme").catch((e: unknown) => e);
    expect(isMeshError(err) && err.details.retryAfterMs).toBe(3);
  });

  it("refuses a suspended tenant with FAILED_PRECONDITION", async () => {
    const limits = createTenantLimits({
      now,
      lookup: async () => ({
        rateLimitPerSecond: 0,
        maxConcurrentStreams: 0,
        suspendedAt: new Date(),
      }),
    });
    const err = await limits.admit("acme").catch((e: unknown) => e);
    expect(isMeshError(err) && [err.codeName, err.message]).toEqual([
      "FAILED_PRECONDITION",
      "tenant acme is suspended",
    ]);
  });
});

describe("tenant limits with shared stream leases", () => {
  const leases = (open: () => Promise<boolean>) => {
    const closed: string[] = [];
    return {
      closed,
      sharedStreams: {
        instance: "gw-1",
        open,
        renew: async () => 0,
        close: async (_instance: string, streamId: string) => {
          closed.push(streamId);
        },
      },
    };
  };

  it("refuses when the mesh holds the limit and deletes the lease when the stream ends", async () => {
    let allow = true;
    const { sharedStreams, closed } = leases(async () => allow);
    const limits = createTenantLimits({ defaultMaxStreams: 5, sharedStreams });
    const release = await limits.openStream("acme");
    allow = false;
    const err = await limits.openStream("acme").catch((e: unknown) => e);
    expect(isMeshError(err) && err.message).toMatch(/open streams across the mesh/);
    release();
    release();
    expect(closed).toHaveLength(1);
    limits.stop();
  });

  it("counts the replica's own streams when the store fails (fail open, bounded)", async () => {
    const fallbacks: unknown[] = [];
    const { sharedStreams } = leases(async () => {
      throw new Error("store away");
    });
    const limits = createTenantLimits({
      defaultMaxStreams: 2,
      sharedStreams: { ...sharedStreams, onFallback: (e) => fallbacks.push(e) },
    });
    await limits.openStream("acme");
    await limits.openStream("acme");
    const err = await limits.openStream("acme").catch((e: unknown) => e);
    expect(isMeshError(err) && err.message).toMatch(/has 2 open streams/);
    expect(fallbacks).toHaveLength(3);
    limits.stop();
  });
});
