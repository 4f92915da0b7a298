/**
 * Latency percentiles from an HDR histogram (microsecond resolution), so p99
 * is exact to the bucket rather than an average of averages.
 */
import * as hdr from "hdr-histogram-js";

export interface LatencySummary {
  count: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
}

export class LatencyHistogram {
  readonly #h = hdr.build({
    bitBucketSize: 64,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  });

  /** Records one latency in microseconds (clamped to the trackable range). */
  recordUs(us: number): void {
    this.#h.recordValue(Math.min(Math.max(1, Math.round(us)), 60_000_000));
  }

  /** Records the time since `startNs` (from `process.hrtime.bigint()`). */
  recordSince(startNs: bigint): void {
    this.recordUs(Number(process.hrtime.bigint() - startNs) / 1000);
  }

  summary(): LatencySummary {
    const h = this.#h;
    return {
      count: h.totalCount,
      p50Us: h.getValueAtPercentile(50),
      p90Us: h.getValueAtPercentile(90),
      p99Us: h.getValueAtPercentile(99),
      p999Us: h.getValueAtPercentile(99.9),
      maxUs: h.maxValue,
      meanUs: Math.round(h.mean * 10) / 10,
    };
  }
}
