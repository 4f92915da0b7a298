/**
 * An open-loop load generator: calls start on a fixed schedule whether or not
 * earlier calls finished, and latency is measured from the *intended* start,
 * so a stalled server shows up in the percentiles (no coordinated omission).
 */
import { LatencyHistogram, type LatencySummary } from "./histogram.js";

export interface OpenLoopOptions {
  /** Calls per second to start. */
  rate: number;
  /** How long to generate load. */
  durationMs: number;
  /** One call, given its intended start (`process.hrtime.bigint()`); a rejection counts as an error. */
  call: (intendedNs: bigint) => Promise<unknown>;
  /** Calls allowed in flight before new ones are counted as dropped; default 10,000. */
  maxInFlight?: number;
}

export interface OpenLoopResult {
  targetRate: number;
  achievedRate: number;
  completed: number;
  errors: number;
  dropped: number;
  latency: LatencySummary;
  firstError?: string;
}

export async function runOpenLoop(options: OpenLoopOptions): Promise<OpenLoopResult> {
  const { rate, durationMs, call, maxInFlight = 10_000 } = options;
  const histogram = new LatencyHistogram();
  const intervalNs = 1e9 / rate;
  const total = Math.max(1, Math.floor((rate * durationMs) / 1000));
  const t0 = process.hrtime.bigint();
  let inFlight = 0;
  let completed = 0;
  let errors = 0;
  let dropped = 0;
  let firstError: string | undefined;
  const pending = new Set<Promise<void>>();

  for (let i = 0; i < total; i++) {
    const intended = t0 + BigInt(Math.round(i * intervalNs));
    const now = process.hrtime.bigint();
    if (intended > now) {
      // Sleep on a timer, at least 1 ms, and then start every call that has come due: calls
      // late by up to a millisecond count it in their latency (measured from `intended`).
      // Spinning on setImmediate for sub-millisecond waits kept this thread — the one the
      // server under test runs on — 100 % busy, and its promise per turn fed the young
      // generation, so every scavenge copied the calls in flight (see docs/performance.md).
      const waitMs = Math.max(1, Math.floor(Number(intended - now) / 1e6));
      await new Promise((r) => setTimeout(r, waitMs));
    }
    if (inFlight >= maxInFlight) {
      dropped++;
      continue;
    }
    inFlight++;
    const p: Promise<void> = call(intended).then(
      () => {
        histogram.recordSince(intended);
        completed++;
      },
      (err: unknown) => {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      },
    );
    const tracked = p.finally(() => {
      inFlight--;
      pending.delete(tracked);
    });
    pending.add(tracked);
  }
  await Promise.all(pending);
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    targetRate: rate,
    achievedRate: Math.round(completed / elapsedS),
    completed,
    errors,
    dropped,
    latency: histogram.summary(),
    ...(firstError === undefined ? {} : { firstError }),
  };
}

/** Runs `call` back to back with `concurrency` workers for `durationMs`; returns calls/s. */
export async function runClosedLoop(
  concurrency: number,
  durationMs: number,
  call: () => Promise<unknown>,
): Promise<{ rate: number; completed: number; errors: number; latency: LatencySummary }> {
  const histogram = new LatencyHistogram();
  const end = Date.now() + durationMs;
  let completed = 0;
  let errors = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const start = process.hrtime.bigint();
        try {
          await call();
          histogram.recordSince(start);
          completed++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsedS = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    rate: Math.round(completed / elapsedS),
    completed,
    errors,
    latency: histogram.summary(),
  };
}
