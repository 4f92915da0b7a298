/**
 * Bounds on label values that come from users (tenants, goal kinds), so a
 * tenant flood or a stream of made-up goal kinds cannot blow up the number of
 * time series every Prometheus scrape stores. Tenants named in
 * `AGENTMESH_METRICS_TENANTS` keep their own label; every other tenant is
 * folded into `other`. Free-form values (goal kinds) keep the first `max`
 * distinct values a process saw, then fold the rest.
 *
 * @example
 * const tenant = tenantLabel(["acme"]);
 * tenant("acme"); // "acme"
 * tenant("globex"); // "other"
 */
import { settings } from "../config/settings.js";

/** The label value every value outside a guard's bound becomes. */
export const otherLabel = "other";

/** Tenants by name from `names` (default the setting), every other tenant as `other`. */
export function tenantLabel(
  names: readonly string[] = settings.metricsTenants.read(),
): (tenantId: string) => string {
  const kept = new Set(names);
  return (tenantId) => (kept.has(tenantId) ? tenantId : otherLabel);
}

/** The first `max` distinct values as themselves, any later one as `other`. */
export function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= max) return otherLabel;
    seen.add(value);
    return value;
  };
}
