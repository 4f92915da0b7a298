/**
 * Agent reliability: an exponentially time-decayed success rate per (agent,
 * capability), shrunk towards a Beta prior so that one lucky attempt does not
 * make a new agent the favourite. The registry orders candidates by it; the
 * executor breaks arbitration ties with it.
 *
 * @example
 * let rec = observeReliability(undefined, { agentId: "a1", capability: "pdf.extract", success: true, at: now });
 * reliabilityScore(rec, now + DAY_MS) // → { agentId: "a1", capability: "pdf.extract", score: ~0.6, observations: ~0.5 }
 */

import { DAY_MS, decayFactor } from "./decay.js";
import type { AgentOutcome } from "./outcome.js";

/** One persisted reliability row (JSON-able). */
export interface ReliabilityRecord {
  agentId: string;
  capability: string;
  /** Decayed successes as of `updatedAt`. */
  successes: number;
  /** Decayed failures as of `updatedAt`. */
  failures: number;
  /** Epoch milliseconds. */
  updatedAt: number;
}

/** A score, shaped like `agentmesh.v1.AgentReliability`. */
export interface ReliabilityScore {
  agentId: string;
  capability: string;
  /** Posterior mean success rate in [0, 1]. */
  score: number;
  /** Decayed observations behind the score. */
  observations: number;
}

export interface ReliabilityOptions {
  /** Half-life of observations; default 1 day (agents change faster than strategies). */
  halfLifeMs?: number;
  /** Prior pseudo-successes; default 1. */
  priorSuccesses?: number;
  /** Prior pseudo-failures; default 1 (so an unknown agent scores 0.5). */
  priorFailures?: number;
}

/** One attempt of an agent. */
export interface ReliabilityObservation {
  agentId: string;
  capability: string;
  success: boolean;
  /** Epoch milliseconds. */
  at: number;
}

const defaultHalfLife = DAY_MS;

/** Folds an attempt into a row (a late attempt is decayed rather than rewinding the row). */
export function observeReliability(
  rec: ReliabilityRecord | undefined,
  obs: ReliabilityObservation,
  options: ReliabilityOptions = {},
): ReliabilityRecord {
  const hl = options.halfLifeMs ?? defaultHalfLife;
  const base = rec ?? {
    agentId: obs.agentId,
    capability: obs.capability,
    successes: 0,
    failures: 0,
    updatedAt: obs.at,
  };
  const at = Math.max(base.updatedAt, obs.at);
  const old = decayFactor(at - base.updatedAt, hl);
  const w = decayFactor(at - obs.at, hl);
  return {
    agentId: base.agentId,
    capability: base.capability,
    successes: base.successes * old + (obs.success ? w : 0),
    failures: base.failures * old + (obs.success ? 0 : w),
    updatedAt: at,
  };
}

/** The observations a finished goal's agent results add. */
export function reliabilityObservations(
  results: readonly AgentOutcome[],
  at: number,
): ReliabilityObservation[] {
  return results.map((r) => ({
    agentId: r.agentId,
    capability: r.capability,
    success: r.success,
    at,
  }));
}

/** A row's score as of `now`. */
export function reliabilityScore(
  rec: ReliabilityRecord,
  now: number,
  options: ReliabilityOptions = {},
): ReliabilityScore {
  const d = decayFactor(now - rec.updatedAt, options.halfLifeMs ?? defaultHalfLife);
  const s = rec.successes * d;
  const f = rec.failures * d;
  const a = options.priorSuccesses ?? 1;
  const b = options.priorFailures ?? 1;
  return {
    agentId: rec.agentId,
    capability: rec.capability,
    score: (s + a) / (s + f + a + b),
    observations: s + f,
  };
}

/** Key of a reliability row in maps. */
export function reliabilityKey(agentId: string, capability: string): string {
  return `${agentId}\u0000${capability}`;
}

/**
 * Agents ordered most reliable first for a capability: by score, then by
 * more evidence, then by id so the order is total. Unknown agents get the
 * prior's score.
 */
export function orderByReliability(
  agentIds: readonly string[],
  capability: string,
  records: ReadonlyMap<string, ReliabilityRecord>,
  now: number,
  options: ReliabilityOptions = {},
): ReliabilityScore[] {
  const scores = agentIds.map((agentId) => {
    const rec = records.get(reliabilityKey(agentId, capability));
    return rec
      ? reliabilityScore(rec, now, options)
      : reliabilityScore(
          { agentId, capability, successes: 0, failures: 0, updatedAt: now },
          now,
          options,
        );
  });
  return scores.sort(
    (x, y) =>
      y.score - x.score ||
      y.observations - x.observations ||
      (x.agentId < y.agentId ? -1 : x.agentId > y.agentId ? 1 : 0),
  );
}
