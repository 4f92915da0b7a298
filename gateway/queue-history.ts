/**
 * A short history of queue figures per capability, sampled by the gateway
 * itself so the console's charts have the last minutes to show the moment a
 * view opens. Each gateway replica keeps its own (figures are mesh-wide, so
 * any replica's history is the mesh's). A failed sample is skipped.
 *
 * @example
 * const history = startQueueHistory({ stats: () => bus.stats() });
 * history.series("report.archive"); // { depth: [2, 2, 3], lag: [...], ackPending: [...] }
 * history.stop();
 */
import type { QueueStats } from "../lib/bus/job-bus.js";

/** One sample every 5 s ... */
export const queueSampleIntervalMs = 5_000;
/** ... for the last 10 minutes. */
export const queueHistoryMs = 10 * 60_000;

export interface QueueSeries {
  depth: number[];
  lag: number[];
  ackPending: number[];
}

export interface QueueHistory {
  /** Oldest first; empty series for a capability not seen yet. */
  series(capability: string): QueueSeries;
  readonly intervalMs: number;
  /** How far back the series go (when full). */
  readonly windowMs: number;
  stop(): void;
}

export function startQueueHistory(options: {
  stats: () => Promise<QueueStats[]>;
  intervalMs?: number;
  windowMs?: number;
}): QueueHistory {
  const intervalMs = options.intervalMs ?? queueSampleIntervalMs;
  const windowMs = options.windowMs ?? queueHistoryMs;
  const samples = Math.max(1, Math.round(windowMs / intervalMs));
  const byCapability = new Map<string, QueueSeries>();
  let sampling = false;
  const sample = async () => {
    if (sampling) return; // a slow bus: one sample in flight at most
    sampling = true;
    try {
      const rows = await options.stats();
      const seen = new Set<string>();
      for (const row of rows) {
        seen.add(row.capability);
        let s = byCapability.get(row.capability);
        if (!s) {
          s = { depth: [], lag: [], ackPending: [] };
          byCapability.set(row.capability, s);
        }
        append(s.depth, row.depth, samples);
        append(s.lag, row.lag, samples);
        append(s.ackPending, row.ackPending, samples);
      }
      // A capability whose queue is gone has no history worth showing.
      for (const c of byCapability.keys()) if (!seen.has(c)) byCapability.delete(c);
    } catch {
      // The bus is away: this sample is skipped, the next may succeed.
    } finally {
      sampling = false;
    }
  };
  void sample();
  const timer = setInterval(() => void sample(), intervalMs);
  timer.unref();
  return {
    intervalMs,
    windowMs,
    series(capability) {
      const s = byCapability.get(capability);
      return s
        ? { depth: [...s.depth], lag: [...s.lag], ackPending: [...s.ackPending] }
        : { depth: [], lag: [], ackPending: [] };
    },
    stop() {
      clearInterval(timer);
    },
  };
}

function append(series: number[], value: number, max: number): void {
  series.push(value);
  if (series.length > max) series.splice(0, series.length - max);
}
