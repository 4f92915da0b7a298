/**
 * Resolution of feature flags scoped to a tenant and/or goal kind: the most
 * specific flag wins. Specificity, highest first: tenant and kind, tenant
 * only, kind only, global. An empty or missing scope field is a wildcard.
 *
 * The learning service reads two flags: `learning.selector` (which selector
 * runs) and `learning.canary_fraction` (traffic share of a canary version).
 *
 * @example
 * const flags = [
 *   { key: SELECTOR_FLAG, value: "ucb1" },
 *   { key: SELECTOR_FLAG, value: "fixed", tenantId: "acme", goalKind: "summarize" },
 * ];
 * resolveFlag(flags, SELECTOR_FLAG, { tenantId: "acme", goalKind: "summarize" })?.value // → "fixed"
 * resolveFlag(flags, SELECTOR_FLAG, { tenantId: "acme", goalKind: "translate" })?.value // → "ucb1"
 */

export const SELECTOR_FLAG = "learning.selector";
export const CANARY_FRACTION_FLAG = "learning.canary_fraction";
/** "false" for a tenant (or kind): its goals never go to a canary version. */
export const CANARY_FLAG = "learning.canary";
/** Canary share when no flag sets one. */
export const DEFAULT_CANARY_FRACTION = 0.1;

/** One flag value with its scope (JSON-able, one row of the store's flag table). */
export interface FeatureFlag {
  key: string;
  value: string;
  /** Only for this tenant; empty or missing means every tenant. */
  tenantId?: string;
  /** Only for this goal kind; empty or missing means every kind. */
  goalKind?: string;
}

export interface FlagScope {
  tenantId?: string;
  goalKind?: string;
}

/**
 * The flag that applies to a scope, or undefined. Among equally specific
 * flags the first in the list wins, so the result never depends on chance.
 */
export function resolveFlag(
  flags: readonly FeatureFlag[],
  key: string,
  scope: FlagScope,
): FeatureFlag | undefined {
  let best: FeatureFlag | undefined;
  let bestRank = -1;
  for (const flag of flags) {
    if (flag.key !== key) continue;
    if (flag.tenantId && flag.tenantId !== scope.tenantId) continue;
    if (flag.goalKind && flag.goalKind !== scope.goalKind) continue;
    const rank = (flag.tenantId ? 2 : 0) + (flag.goalKind ? 1 : 0);
    if (rank > bestRank) {
      best = flag;
      bestRank = rank;
    }
  }
  return best;
}

/** The canary fraction for a scope: the flag when it is a number in [0, 1], else the default. */
export function resolveCanaryFraction(
  flags: readonly FeatureFlag[],
  scope: FlagScope,
  fallback = DEFAULT_CANARY_FRACTION,
): number {
  const raw = resolveFlag(flags, CANARY_FRACTION_FLAG, scope)?.value;
  const value = raw === undefined || raw.trim() === "" ? Number.NaN : Number(raw);
  return value >= 0 && value <= 1 ? value : fallback;
}
