/**
 * Agent leases: how long a registration lives without a heartbeat.
 *
 * @example
 * const ttl = leaseTtlMs(request.leaseTtl); // default 15s, clamped to [5s, 60s]
 * const expiresAt = now + ttl;
 */
import { type Duration, durationMs } from "@bufbuild/protobuf/wkt";

/** Lease bounds and default, in milliseconds. */
export const leaseBounds = { minMs: 5_000, maxMs: 60_000, defaultMs: 15_000 } as const;

/** The lease granted for a requested TTL (a Duration, milliseconds, or nothing for the default). */
export function leaseTtlMs(requested: Duration | number | undefined): number {
  const ms =
    requested === undefined ? 0 : typeof requested === "number" ? requested : durationMs(requested);
  if (!Number.isFinite(ms) || ms <= 0) return leaseBounds.defaultMs;
  return Math.min(leaseBounds.maxMs, Math.max(leaseBounds.minMs, Math.round(ms)));
}

/** How often an agent should heartbeat for a lease: a third of it, so two may be lost. */
export function heartbeatIntervalMs(leaseMs: number): number {
  return Math.floor(leaseMs / 3);
}
