/**
 * A prom-client histogram that keeps, per bucket, the trace id of its latest
 * observation (an OpenMetrics exemplar). prom-client refuses exemplars on a
 * registry that renders the Prometheus text format, but `/metrics` picks the
 * format per scrape (`exposition.ts`), so the histogram is registered by hand:
 * the text format leaves exemplars out, OpenMetrics carries them.
 *
 * @example
 * const h = exemplarHistogram(registry, { name: "x_seconds", help: "...", labelNames: ["kind"], buckets });
 * observeWithTrace(h, { kind: "echo" }, 0.12, "4bf92f3577b34da6a3ce929d0e0e4736");
 */
import { Histogram, type LabelValues, type Registry } from "prom-client";
import { parseTraceparent } from "./trace-context.js";

export interface ExemplarHistogramOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  buckets: number[];
}

/** The histogram registered in `registry`, or the one already there under that name. */
export function exemplarHistogram<L extends string>(
  registry: Registry,
  options: ExemplarHistogramOptions<L>,
): Histogram<L> {
  const existing = registry.getSingleMetric(options.name);
  if (existing) return existing as Histogram<L>;
  const histogram = new Histogram<L>({
    name: options.name,
    help: options.help,
    labelNames: options.labelNames,
    buckets: options.buckets,
    enableExemplars: true,
    registers: [],
  });
  registry.registerMetric(histogram);
  return histogram;
}

const traceIdPattern = /^[0-9a-f]{32}$/;

/** Observes `value`, with `trace_id` as the bucket's exemplar when a valid trace id is known. */
export function observeWithTrace<L extends string>(
  histogram: Histogram<L>,
  labels: LabelValues<L>,
  value: number,
  traceId: string | undefined,
): void {
  const exemplarLabels =
    traceId && traceIdPattern.test(traceId) && !/^0+$/.test(traceId) ? { trace_id: traceId } : {};
  histogram.observe({ labels, value, exemplarLabels } as never);
}

/** The trace id of a W3C `traceparent`, if it is one. */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  return parseTraceparent(traceparent)?.traceId;
}
