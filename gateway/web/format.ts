/** How the dashboard writes ids, times, ages and values. Pure, browser-safe. */
import { redactSecrets } from "../../lib/policy/redact-secrets.js";

/** The first 8 characters of an id (a UUID's first group): enough to tell goals apart on a page. */
export const shortId = (id: string) => (id.length > 8 ? id.slice(0, 8) : id);

/** A time of day, or date and time when not today. */
export function clock(ms: number | undefined, now = Date.now()): string {
  if (ms === undefined) return "–";
  const d = new Date(ms);
  const sameDay = new Date(now).toDateString() === d.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

/** "3 s", "4 min", "2 h", "5 d". */
export function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

/** A duration between two times, or "–". */
export function span(from: number | undefined, to: number | undefined): string {
  if (from === undefined || to === undefined) return "–";
  const ms = Math.max(0, to - from);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/**
 * A value as indented JSON (bigint-safe) for input/output panes, with
 * secret-looking fields masked (a console is often on a shared screen).
 */
export function pretty(value: unknown): string {
  if (value === undefined) return "–";
  return JSON.stringify(
    redactSecrets(value),
    (_k, v) => (typeof v === "bigint" ? v.toString() : v),
    2,
  );
}

/** Lower-case name of an enum value, e.g. `GoalStatus.RETRY_WAIT` → "retry_wait". */
export const enumName = (e: Record<number, string>, v: number) => (e[v] ?? "unknown").toLowerCase();
