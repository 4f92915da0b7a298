/**
 * A tenant's operating settings as every service reads them: the limits kept
 * in its record's `limits` (concurrent goals, largest goal input, per-capability
 * step quotas) and its feature flags (tenant-scoped rows of the flag table).
 * One module so the gateway that writes them and the executor, planner and
 * learning service that enforce them agree on names and meanings.
 *
 * @example
 * const limits = goalLimitsOf(record.limits); // { maxConcurrentGoals: 10, maxGoalInputBytes: 0, stepQuotas: {...} }
 * stepQuotaFor(limits.stepQuotas, "text.upper"); // 60 (dispatches per minute) or undefined
 */
import type { JsonObject } from "@bufbuild/protobuf";

/** Feature flag keys a tenant's settings map to. */
export const tenantFlags = {
  /** Which strategy selector the learning service runs (`learning.selector`). */
  learningSelector: "learning.selector",
  /** "false": the LLM planner does not plan the tenant's goals. */
  llmPlanner: "planner.llm",
  /** "false": the tenant's goals never go to a canary parameters version. */
  canary: "learning.canary",
} as const;

/** Whether a boolean flag's stored value switches the feature off (absent means on). */
export function flagOff(value: unknown): boolean {
  return value === false || value === "false";
}

/** The goal limits of a tenant record's `limits`. */
export interface GoalLimits {
  /** Goals in flight at once across the mesh; 0 means no limit. */
  maxConcurrentGoals: number;
  /** Largest goal input (its JSON) in bytes; 0 means the executor default. */
  maxGoalInputBytes: number;
  /** Step dispatches per minute by capability or `prefix.*` pattern. */
  stepQuotas: Readonly<Record<string, number>>;
}

const positive = (v: unknown): number =>
  typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : 0;

export function goalLimitsOf(limits: JsonObject | undefined): GoalLimits {
  const quotas: Record<string, number> = {};
  const raw = limits?.stepQuotas;
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    for (const [k, v] of Object.entries(raw)) if (positive(v)) quotas[k] = positive(v);
  }
  return {
    maxConcurrentGoals: positive(limits?.maxConcurrentGoals),
    maxGoalInputBytes: positive(limits?.maxGoalInputBytes),
    stepQuotas: quotas,
  };
}

/**
 * The quota that applies to a capability and the pattern it was set for: the
 * exact name first, then the longest `prefix.*` that matches.
 */
export function stepQuotaFor(
  quotas: Readonly<Record<string, number>>,
  capability: string,
): { pattern: string; perMinute: number } | undefined {
  const exact = quotas[capability];
  if (exact) return { pattern: capability, perMinute: exact };
  let best: { pattern: string; perMinute: number } | undefined;
  for (const [pattern, perMinute] of Object.entries(quotas)) {
    if (!pattern.endsWith(".*")) continue;
    const prefix = pattern.slice(0, -1);
    if (capability.startsWith(prefix) && (!best || pattern.length > best.pattern.length)) {
      best = { pattern, perMinute };
    }
  }
  return best;
}

/** The shared bucket key of a tenant's step quota. */
export function stepQuotaBucketKey(tenantId: string, pattern: string): string {
  return `steps:${tenantId}:${pattern}`;
}
