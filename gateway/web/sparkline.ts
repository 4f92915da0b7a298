/**
 * Small time-series charts: a series of samples drawn as an SVG polyline
 * (no chart library: one line and a label is all a table cell needs).
 */
import { type Elem, svg } from "./dom.js";

/** Samples each series keeps (at one sample per refresh, a few minutes). */
export const sparklineSamples = 60;

/** Appends `value` to `series`, dropping the oldest beyond `sparklineSamples`. */
export function push(series: number[], value: number): void {
  series.push(value);
  if (series.length > sparklineSamples) series.splice(0, series.length - sparklineSamples);
}

/** Polyline points of `values` in a `width`×`height` box, 0 at the bottom. Pure. */
export function points(values: readonly number[], width: number, height: number): string {
  if (values.length === 0) return "";
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / max) * (height - 2)).toFixed(1)}`)
    .join(" ");
}

/** A chart of `values` labelled for screen readers with `label` and the latest value. */
export function sparkline(values: readonly number[], label: string): Elem {
  const width = 80;
  const height = 20;
  const last = values[values.length - 1];
  return svg(
    "svg",
    {
      class: "spark",
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `${label}: ${values.length} samples, latest ${last ?? "none"}, highest ${values.length ? Math.max(...values) : "none"}`,
    },
    svg("polyline", { points: points(values, width, height), fill: "none" }),
  );
}
