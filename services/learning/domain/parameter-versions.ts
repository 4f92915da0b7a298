/**
 * The list of parameters versions and its state machine, as pure functions
 * over plain records (the fields of `agentmesh.v1.ParametersVersion`):
 *
 * - `publishVersion`: the first version becomes CURRENT; later ones start as
 *   CANARY with the canary fraction (an earlier undecided canary is rolled back).
 * - `applyVerdict`: the drift guard's verdict promotes (canary → CURRENT, old
 *   current → RETIRED) or rolls back (canary → ROLLED_BACK).
 * - `rollbackTo`: an operator makes any earlier version CURRENT again.
 * - `routeVersion`: which version decides for a goal, by a stable hash of its id.
 *
 * Every function returns a new array and never mutates its input.
 *
 * @example
 * let versions = publishVersion([], { version: "v1", runId: "r1", createdAt: now });
 * versions = publishVersion(versions, { version: "v2", runId: "r2", createdAt: now, canaryFraction: 0.1 });
 * routeVersion(versions, "goal-42") // → { version: "v1", canary: false } for ~90% of goal ids
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { DriftVerdict } from "./drift-guard.js";
import { DEFAULT_CANARY_FRACTION } from "./feature-flags.js";
import { unitHash } from "./murmur-hash.js";

export type ParametersState = "CURRENT" | "CANARY" | "RETIRED" | "ROLLED_BACK";

/** One version's metadata (JSON-able). */
export interface VersionRecord {
  version: string;
  state: ParametersState;
  /** Epoch milliseconds. */
  createdAt: number;
  runId: string;
  /** Fraction of decisions it serves, in [0, 1]. */
  trafficFraction: number;
  /**
   * Outcomes of decisions it made while serving. Counters of the CURRENT
   * version restart when a canary starts, so both cover the same window.
   */
  successes: number;
  failures: number;
  /** Why it has its state (e.g. the drift guard's verdict). */
  note: string;
}

export interface PublishOptions {
  version: string;
  runId: string;
  createdAt: number;
  /** Share of decisions for the canary; default 0.1. */
  canaryFraction?: number;
  note?: string;
}

/** The CURRENT version, if any. */
export function currentVersion(versions: readonly VersionRecord[]): VersionRecord | undefined {
  return versions.find((v) => v.state === "CURRENT");
}

/** The CANARY version, if any. */
export function canaryVersion(versions: readonly VersionRecord[]): VersionRecord | undefined {
  return versions.find((v) => v.state === "CANARY");
}

/** The versions without the canary: how a tenant out of canaries is routed. */
export function withoutCanary(versions: readonly VersionRecord[]): VersionRecord[] {
  return versions.filter((v) => v.state !== "CANARY");
}

/** The next version id: "v" + one more than the highest numbered one. */
export function nextVersionId(versions: readonly VersionRecord[]): string {
  let max = 0;
  for (const v of versions) {
    const m = /^v(\d+)$/.exec(v.version);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return `v${max + 1}`;
}

/** Adds a freshly trained version (ALREADY_EXISTS when the id is taken). */
export function publishVersion(
  versions: readonly VersionRecord[],
  options: PublishOptions,
): VersionRecord[] {
  if (versions.some((v) => v.version === options.version)) {
    throw new MeshError(Code.AlreadyExists, `parameters version ${options.version} already exists`);
  }
  const fraction = options.canaryFraction ?? DEFAULT_CANARY_FRACTION;
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new MeshError(Code.InvalidArgument, `canary fraction must be in [0, 1], got ${fraction}`);
  }
  const current = currentVersion(versions);
  const fresh: VersionRecord = {
    version: options.version,
    state: current ? "CANARY" : "CURRENT",
    createdAt: options.createdAt,
    runId: options.runId,
    trafficFraction: current ? fraction : 1,
    successes: 0,
    failures: 0,
    note: options.note ?? (current ? `canary at ${fraction}` : "first version"),
  };
  const rest = versions.map((v): VersionRecord => {
    if (v.state === "CANARY") {
      return {
        ...v,
        state: "ROLLED_BACK",
        trafficFraction: 0,
        note: `superseded by ${options.version} before a verdict`,
      };
    }
    if (v.state === "CURRENT") {
      return { ...v, trafficFraction: 1 - fraction, successes: 0, failures: 0 };
    }
    return v;
  });
  return [fresh, ...rest];
}

/** Counts one served outcome for the version that made the decision (unknown ids are ignored). */
export function recordServed(
  versions: readonly VersionRecord[],
  version: string,
  success: boolean,
): VersionRecord[] {
  return versions.map((v) =>
    v.version === version && (v.state === "CURRENT" || v.state === "CANARY")
      ? {
          ...v,
          successes: v.successes + (success ? 1 : 0),
          failures: v.failures + (success ? 0 : 1),
        }
      : v,
  );
}

/**
 * Applies a drift-guard verdict to the canary. `continue` changes nothing.
 * FAILED_PRECONDITION when there is no canary to decide about.
 */
export function applyVerdict(
  versions: readonly VersionRecord[],
  verdict: Pick<DriftVerdict, "action" | "reason">,
): VersionRecord[] {
  const canary = canaryVersion(versions);
  if (!canary) throw new MeshError(Code.FailedPrecondition, "no canary version to decide about");
  if (verdict.action === "continue") return [...versions];
  return versions.map((v): VersionRecord => {
    if (verdict.action === "promote") {
      if (v.state === "CANARY")
        return { ...v, state: "CURRENT", trafficFraction: 1, note: verdict.reason };
      if (v.state === "CURRENT") {
        return {
          ...v,
          state: "RETIRED",
          trafficFraction: 0,
          note: `replaced by ${canary.version}`,
        };
      }
    } else {
      if (v.state === "CANARY") {
        return { ...v, state: "ROLLED_BACK", trafficFraction: 0, note: verdict.reason };
      }
      if (v.state === "CURRENT") return { ...v, trafficFraction: 1 };
    }
    return v;
  });
}

/**
 * Makes `version` CURRENT again (operator rollback). The previous current and
 * any canary become ROLLED_BACK. NOT_FOUND for an unknown version; a version
 * that is already current is returned unchanged.
 */
export function rollbackTo(
  versions: readonly VersionRecord[],
  version: string,
  reason: string,
): VersionRecord[] {
  const target = versions.find((v) => v.version === version);
  if (!target) throw new MeshError(Code.NotFound, `parameters version ${version} not found`);
  if (target.state === "CURRENT" && !canaryVersion(versions)) return [...versions];
  const note = reason ? `rolled back to ${version}: ${reason}` : `rolled back to ${version}`;
  return versions.map((v): VersionRecord => {
    if (v.version === version) {
      return {
        ...v,
        state: "CURRENT",
        trafficFraction: 1,
        successes: 0,
        failures: 0,
        note: reason || "rollback target",
      };
    }
    if (v.state === "CURRENT" || v.state === "CANARY") {
      return { ...v, state: "ROLLED_BACK", trafficFraction: 0, note };
    }
    return v;
  });
}

/** Which version decides for a goal. */
export interface VersionRoute {
  version: string;
  canary: boolean;
}

/**
 * Routes a goal: the canary takes goals whose id hashes below its fraction, so
 * a goal (and its retries) always lands on the same version. Undefined when
 * no version exists yet (serve `emptyParameters()`).
 */
export function routeVersion(
  versions: readonly VersionRecord[],
  routingKey: string,
): VersionRoute | undefined {
  const current = currentVersion(versions);
  const canary = canaryVersion(versions);
  if (canary && unitHash(routingKey, 0x51ed270b) < canary.trafficFraction) {
    return { version: canary.version, canary: true };
  }
  if (current) return { version: current.version, canary: false };
  return canary ? { version: canary.version, canary: true } : undefined;
}
