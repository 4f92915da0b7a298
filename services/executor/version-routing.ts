/**
 * Version routing (ADR-015): a step with a semver range runs only on an agent
 * whose card version is inside it. The executor pins the step's job to one
 * version — the highest live one inside the range — and publishes it on that
 * version's own queue, which only agents of that version consume; so a 1.x
 * agent never even sees a job of a step constrained to `^2.0.0`. With no live
 * agent inside the range (or the registry unreachable) the job is pinned to
 * the lowest version the range admits: still never outside it, it waits like
 * any job no agent took and is dispatched again once one is live.
 *
 * @example
 * const versions = versionRouter((capability) => registry.findAgents({ capability, limit: 100 }));
 * job.agentVersion = await versions.pin("text.summarize", "^2.0.0"); // "2.1.0"
 */
import type { Agent } from "../../gen/agentmesh/v1/registry_pb.js";
import { highestSatisfying, lowestInRange, satisfiesRange } from "../../lib/plan/version-range.js";

export interface VersionRouter {
  /** The version a job of `capability` constrained to `range` is pinned to; undefined when no version can satisfy it. */
  pin(capability: string, range: string): Promise<string | undefined>;
  /** Whether a live agent inside `range` offers `capability`; undefined when the registry cannot say. */
  available(capability: string, range: string): Promise<boolean | undefined>;
}

/** `findAgents` lists the live agents offering a capability (the registry's FindAgents). */
export function versionRouter(findAgents: (capability: string) => Promise<Agent[]>): VersionRouter {
  const liveVersions = async (capability: string): Promise<string[] | undefined> => {
    try {
      return (await findAgents(capability)).map((a) => a.card?.version ?? "");
    } catch {
      return undefined;
    }
  };
  return {
    async pin(capability, range) {
      const live = (await liveVersions(capability)) ?? [];
      return highestSatisfying(live, range) ?? lowestInRange(range);
    },
    async available(capability, range) {
      const live = await liveVersions(capability);
      return live === undefined ? undefined : live.some((v) => satisfiesRange(v, range));
    },
  };
}
