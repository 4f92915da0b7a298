/**
 * What the registry decides about registered agents at a point in time:
 * which are live, which the sweeper withdraws, which serve a capability and
 * in what order, and which watch events a change produces.
 *
 * @example
 * const expired = expiredAgents(agents, Date.now()); // mark EXPIRED, emit EXPIRED changes
 * const ranked = rankCandidates(agents, "text.summarize", Date.now());
 */
import { create, equals } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import {
  type Agent,
  AgentCardSchema,
  AgentChangeKind,
  AgentState,
  type WatchAgentsResponse,
  WatchAgentsResponseSchema,
} from "../../../gen/agentmesh/v1/registry_pb.js";

/** Reliability assumed for an agent the learning service has not scored yet. */
export const defaultReliability = 0.5;

const ms = (t: Timestamp | undefined): number => (t === undefined ? 0 : timestampMs(t));

/** Whether the agent offers the capability. */
export function offers(agent: Agent, capability: string): boolean {
  return agent.card?.skills.some((s) => s.capability === capability) ?? false;
}

/** Whether the agent takes new jobs at `nowMs`: LIVE with an unexpired lease. */
export function isLive(agent: Agent, nowMs: number): boolean {
  return agent.state === AgentState.LIVE && ms(agent.leaseExpiresAt) > nowMs;
}

/** Agents the sweeper withdraws at `nowMs`: LIVE, DRAINING or PROBATION whose lease has run out. */
export function expiredAgents(agents: Iterable<Agent>, nowMs: number): Agent[] {
  const out: Agent[] = [];
  for (const a of agents) {
    const active =
      a.state === AgentState.LIVE ||
      a.state === AgentState.DRAINING ||
      a.state === AgentState.PROBATION;
    if (active && ms(a.leaseExpiresAt) <= nowMs) out.push(a);
  }
  return out;
}

/** The reliability of an agent for a capability, or the default. */
export function reliabilityOf(agent: Agent, capability: string): number {
  const r = agent.reliability[capability];
  return r === undefined || !Number.isFinite(r) ? defaultReliability : r;
}

/**
 * Live agents offering `capability`, best first: highest reliability, then
 * fewest jobs in flight, then most recent heartbeat (agent id breaks ties so
 * the order is stable). `limit` 0 or undefined means all.
 */
export function rankCandidates(
  agents: Iterable<Agent>,
  capability: string,
  nowMs: number,
  limit = 0,
): Agent[] {
  const ranked = [...agents]
    .filter((a) => isLive(a, nowMs) && offers(a, capability))
    .sort(
      (x, y) =>
        reliabilityOf(y, capability) - reliabilityOf(x, capability) ||
        x.inFlight - y.inFlight ||
        ms(y.lastHeartbeatAt) - ms(x.lastHeartbeatAt) ||
        (x.agentId < y.agentId ? -1 : x.agentId > y.agentId ? 1 : 0),
    );
  return limit > 0 ? ranked.slice(0, limit) : ranked;
}

/** Capabilities offered by at least one live agent (what the planner checks plans against). */
export function liveCapabilities(agents: Iterable<Agent>, nowMs: number): Set<string> {
  const out = new Set<string>();
  for (const a of agents) {
    if (!isLive(a, nowMs)) continue;
    for (const s of a.card?.skills ?? []) out.add(s.capability);
  }
  return out;
}

/**
 * The watch event for a change from `before` to `after` (undefined before
 * means a new agent), or undefined when nothing a watcher cares about changed:
 * heartbeats that only move the lease or the in-flight count are not events.
 */
export function agentChange(
  before: Agent | undefined,
  after: Agent,
  atMs: number,
): WatchAgentsResponse | undefined {
  let kind: AgentChangeKind | undefined;
  if (before === undefined) kind = AgentChangeKind.REGISTERED;
  else if (after.state !== before.state && after.state === AgentState.EXPIRED) {
    kind = AgentChangeKind.EXPIRED;
  } else if (after.state !== before.state && after.state === AgentState.DEREGISTERED) {
    kind = AgentChangeKind.DEREGISTERED;
  } else if (
    after.state !== before.state ||
    after.instanceId !== before.instanceId ||
    after.spiffeId !== before.spiffeId ||
    !sameReliability(before, after) ||
    !equals(
      AgentCardSchema,
      before.card ?? create(AgentCardSchema),
      after.card ?? create(AgentCardSchema),
    )
  ) {
    // Coming back from EXPIRED/DEREGISTERED is a new registration to watchers.
    kind =
      before.state === AgentState.EXPIRED || before.state === AgentState.DEREGISTERED
        ? AgentChangeKind.REGISTERED
        : AgentChangeKind.UPDATED;
  }
  if (kind === undefined) return undefined;
  return create(WatchAgentsResponseSchema, { kind, agent: after, time: timestampFromMs(atMs) });
}

function sameReliability(a: Agent, b: Agent): boolean {
  const ka = Object.keys(a.reliability);
  if (ka.length !== Object.keys(b.reliability).length) return false;
  return ka.every((k) => a.reliability[k] === b.reliability[k]);
}

/** Whether a watcher filtering on `capability` ("" for all) receives the change. */
export function watchMatches(change: WatchAgentsResponse, capability: string): boolean {
  return capability === "" || (change.agent !== undefined && offers(change.agent, capability));
}

/** The SNAPSHOT events a new watcher receives first: one per live agent matching its filter. */
export function watchSnapshot(
  agents: Iterable<Agent>,
  capability: string,
  nowMs: number,
): WatchAgentsResponse[] {
  const out: WatchAgentsResponse[] = [];
  for (const a of agents) {
    if (!isLive(a, nowMs) && a.state !== AgentState.DRAINING) continue;
    if (capability !== "" && !offers(a, capability)) continue;
    out.push(
      create(WatchAgentsResponseSchema, {
        kind: AgentChangeKind.SNAPSHOT,
        agent: a,
        time: timestampFromMs(nowMs),
      }),
    );
  }
  return out;
}
