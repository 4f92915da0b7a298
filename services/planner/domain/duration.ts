/**
 * Human durations in playbooks: `"200ms"`, `"30s"`, `"1.5m"`, `"1h"`, or a
 * bare number of milliseconds.
 *
 * @example
 * parseDuration("1.5s"); // 1500
 */

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;

/** Milliseconds of a duration, or undefined when it is not one. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") {
    return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
  }
  if (typeof value !== "string") return undefined;
  const match = durationPattern.exec(value.trim());
  if (match === null) return undefined;
  return Math.round(Number(match[1]) * units[match[2]!]!);
}

/** The shortest exact spelling of a duration: 200 → "200ms", 30000 → "30s". */
export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
