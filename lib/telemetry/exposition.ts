/**
 * `/metrics` in the format the scraper asks for: the Prometheus text format by
 * default (what curl and older scrapers get), OpenMetrics when the `Accept`
 * header names `application/openmetrics-text` (what Prometheus sends). Only
 * OpenMetrics carries exemplars, the trace ids attached to histogram buckets
 * (`exemplar-histogram.ts`), so Grafana can jump from a slow bucket to a trace.
 *
 * prom-client renders OpenMetrics only for a registry switched to it for good
 * (and renames counters in place while doing so), so the OpenMetrics text is
 * written here from the registry's values, leaving the registry as it is.
 *
 * @example
 * const { contentType, body } = await renderMetrics(registry, req.headers.accept);
 */
import type { MetricObjectWithValues, MetricValue, Registry } from "prom-client";

export const openMetricsContentType = "application/openmetrics-text; version=1.0.0; charset=utf-8";

export interface RenderedMetrics {
  contentType: string;
  body: string;
}

/** Whether an `Accept` header asks for OpenMetrics. */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}

export async function renderMetrics(
  registry: Registry,
  accept: string | undefined,
): Promise<RenderedMetrics> {
  if (!wantsOpenMetrics(accept)) {
    return { contentType: registry.contentType, body: await registry.metrics() };
  }
  return { contentType: openMetricsContentType, body: await openMetricsText(registry) };
}

type Exemplar = { labelSet: Record<string, string>; value: number; timestamp?: number } | null;

/** The registry in the OpenMetrics 1.0 text format, exemplars included. */
export async function openMetricsText(registry: Registry): Promise<string> {
  const families = (await registry.getMetricsAsJSON()) as MetricObjectWithValues<
    MetricValue<string>
  >[];
  const lines: string[] = [];
  for (const family of families) {
    const type = String(family.type);
    // OpenMetrics names a counter family without `_total` and its sample with it.
    const name = type === "counter" ? family.name.replace(/_total$/, "") : family.name;
    lines.push(`# HELP ${name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${name} ${type === "untyped" ? "unknown" : type}`);
    for (const v of family.values ?? []) {
      const sample =
        type === "counter"
          ? `${name}_total`
          : ((v as { metricName?: string }).metricName ?? family.name);
      let line = `${sample}${formatLabels(v.labels as Record<string, unknown>)} ${formatValue(v.value)}`;
      const exemplar = (v as { exemplar?: Exemplar }).exemplar;
      if (exemplar?.labelSet && Object.keys(exemplar.labelSet).length > 0) {
        line += ` # ${formatLabels(exemplar.labelSet) || "{}"} ${formatValue(exemplar.value)}`;
        if (exemplar.timestamp !== undefined) line += ` ${exemplar.timestamp}`;
      }
      lines.push(line);
    }
  }
  lines.push("# EOF", "");
  return lines.join("\n");
}

function formatLabels(labels: Record<string, unknown> | undefined): string {
  const entries = Object.entries(labels ?? {}).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return "";
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(formatLabelValue(v))}"`).join(",")}}`;
}

function formatLabelValue(v: unknown): string {
  if (typeof v === "number") return formatValue(v);
  return String(v);
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

function escapeLabel(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
