/**
 * What the mesh-wide tenant rate limit costs per request: the gateway's
 * `admit` with the shared PostgreSQL token bucket (`store.buckets.take`, one
 * statement per request; ADR-013) against the same limiter with its
 * in-memory bucket only (what every replica did before). 8 concurrent
 * callers; the rate is set so every request is admitted, and every request
 * takes its token with a statement (`leaseSeconds: 0`, the worst case: the
 * gateway's default lease takes 50 ms of rate per statement, so a tenant at
 * R requests/s costs each replica min(R, 20) statements a second). Two
 * shapes: all requests on one tenant (one contended row) and spread over 8.
 * CPU per request is this process's plus PostgreSQL's backends'.
 *
 * `agentmesh bench rate-limit` (5,000 requests each); `--smoke`: 300.
 */
import { performance } from "node:perf_hooks";
import { createTenantLimits, type TenantLimits } from "../gateway/tenant-limits.js";
import { openTestStore } from "../lib/store/testing.js";
import { defaultDatabaseUrl } from "../lib/testing/infra.js";
import type { Benchmark } from "./benchmark.js";
import { LatencyHistogram } from "./histogram.js";
import { commandCpuSeconds } from "./process-cpu.js";

const concurrency = 8;

async function measure(total: number, tenants: number, limits: TenantLimits) {
  const histogram = new LatencyHistogram();
  let next = 0;
  const cpu0 = process.cpuUsage();
  const pg0 = commandCpuSeconds(["postgres"]).postgres ?? Number.NaN;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) {
        const t0 = process.hrtime.bigint();
        await limits.admit(`t${i % tenants}`);
        histogram.recordSince(t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const pg = (commandCpuSeconds(["postgres"]).postgres ?? Number.NaN) - pg0;
  return {
    opsPerSecond: Math.round(total / seconds),
    ...histogram.summary(),
    cpuUsPerOpGateway: Math.round((cpu.user + cpu.system) / total),
    cpuUsPerOpPostgres: Math.round((pg * 1e6) / total),
  };
}

export const rateLimit: Benchmark = {
  name: "rate-limit",
  description: "tenant admission with the shared PostgreSQL bucket vs the in-memory bucket",
  async run({ smoke }) {
    const n = smoke ? 300 : 5000;
    const t = await openTestStore({ databaseUrl: process.env.DATABASE_URL || defaultDatabaseUrl });
    try {
      const s = t.store;
      // Every request admitted: the figures are the bookkeeping's cost, not refusals.
      const options = { defaultRatePerSecond: 1e9 };
      const local = () => createTenantLimits(options);
      const shared = () =>
        createTenantLimits({
          ...options,
          // One statement per request: the worst case (a tenant's lease is one token
          // below 20 requests/s); a busy tenant's replicas take 50 ms of rate per statement.
          shared: {
            take: (key, shape, want) => s.buckets.take(key, shape, want),
            leaseSeconds: 0,
          },
        });
      // Warm both (first-use bucket rows, prepared statements).
      await measure(200, 8, shared());
      const localOne = await measure(n, 1, local());
      const sharedOne = await measure(n, 1, shared());
      const localSpread = await measure(n, 8, local());
      const sharedSpread = await measure(n, 8, shared());
      return {
        requests: n,
        concurrency,
        localOneTenant: localOne,
        sharedOneTenant: { ...sharedOne, ratioToLocalP50: sharedOne.p50Us / localOne.p50Us },
        localEightTenants: localSpread,
        sharedEightTenants: {
          ...sharedSpread,
          ratioToLocalP50: sharedSpread.p50Us / localSpread.p50Us,
        },
      };
    } finally {
      await t.cleanup();
    }
  },
};
