/**
 * Version constraints of playbook steps (ADR-015): a step may name a semver
 * range (`^2.0.0`, `>=1.4 <2`) its agent's card version must satisfy. One
 * module so the planner's validation, the executor's choice of a version and
 * the bus's per-version queues read versions and ranges the same way
 * (npm's `semver`, strict: `v2` or `2.0` are not versions).
 *
 * @example
 * versionRangeProblem("^2.0.0"); // undefined
 * highestSatisfying(["1.4.0", "2.1.0", "2.0.3"], "^2.0.0"); // "2.1.0"
 */
import semver from "semver";

/** Why `range` is not a semver range, or undefined when it is one. */
export function versionRangeProblem(range: string): string | undefined {
  if (range.length > 128) return "a version range has at most 128 characters";
  if (semver.validRange(range) === null)
    return `"${range}" is not a semver range (e.g. "^2.0.0", ">=1.4.0 <2.0.0")`;
  if (lowestInRange(range) === undefined) return `no version satisfies "${range}"`;
  return undefined;
}

/** Whether `version` is a semver version. */
export function isVersion(version: string): boolean {
  return semver.valid(version) !== null;
}

/** Whether `version` is inside `range`; a version that is not semver is inside no range. */
export function satisfiesRange(version: string, range: string): boolean {
  return isVersion(version) && semver.satisfies(version, range);
}

/** The highest of `versions` inside `range`, or undefined. */
export function highestSatisfying(versions: readonly string[], range: string): string | undefined {
  return semver.maxSatisfying(versions.filter(isVersion), range) ?? undefined;
}

/** The lowest version inside `range` (`^2.0.0` → `2.0.0`), or undefined when none can be. */
export function lowestInRange(range: string): string | undefined {
  try {
    return semver.minVersion(range)?.version ?? undefined;
  } catch {
    return undefined;
  }
}
