import { describe, expect, it } from "vitest";
import { DAY_MS } from "./decay.js";
import type { ReliabilityRecord } from "./reliability.js";
import {
  observeReliability,
  orderByReliability,
  reliabilityKey,
  reliabilityObservations,
  reliabilityScore,
} from "./reliability.js";

const t0 = Date.UTC(2025, 0, 1);

function observeMany(
  rec: ReliabilityRecord | undefined,
  agentId: string,
  outcomes: boolean[],
  at: number,
): ReliabilityRecord {
  let r = rec;
  for (const success of outcomes)
    r = observeReliability(r, { agentId, capability: "cap", success, at });
  return r!;
}

describe("agent reliability", () => {
  it("scores unknown agents at the prior and shrinks small samples towards it", () => {
    const one = observeMany(undefined, "a", [true], t0);
    expect(reliabilityScore(one, t0).score).toBeCloseTo(2 / 3);
    const many = observeMany(undefined, "a", new Array(98).fill(true), t0);
    expect(reliabilityScore(many, t0).score).toBeCloseTo(99 / 100);
    expect(reliabilityScore(many, t0, { priorSuccesses: 3, priorFailures: 1 }).score).toBeCloseTo(
      101 / 102,
    );
  });

  it("decays observations with the half-life", () => {
    const rec = observeMany(undefined, "a", new Array(8).fill(false), t0);
    const now = reliabilityScore(rec, t0);
    const later = reliabilityScore(rec, t0 + DAY_MS);
    const muchLater = reliabilityScore(rec, t0 + 10 * DAY_MS);
    expect(now.observations).toBeCloseTo(8);
    expect(later.observations).toBeCloseTo(4);
    // Old failures fade: the score drifts back to the prior's 0.5.
    expect(now.score).toBeCloseTo(0.1);
    expect(later.score).toBeGreaterThan(now.score);
    expect(muchLater.score).toBeCloseTo(0.5, 2);
    expect(reliabilityScore(rec, t0 + DAY_MS, { halfLifeMs: 2 * DAY_MS }).observations).toBeCloseTo(
      8 / Math.SQRT2,
    );
  });

  it("lets recent failures outweigh old successes", () => {
    const old = observeMany(undefined, "a", new Array(20).fill(true), t0);
    const recent = observeMany(old, "a", new Array(10).fill(false), t0 + 5 * DAY_MS);
    expect(reliabilityScore(recent, t0 + 5 * DAY_MS).score).toBeLessThan(0.4);
  });

  it("decays a late observation instead of rewinding the row", () => {
    const rec = observeMany(undefined, "a", [true], t0 + DAY_MS);
    const late = observeReliability(rec, {
      agentId: "a",
      capability: "cap",
      success: false,
      at: t0,
    });
    expect(late.updatedAt).toBe(t0 + DAY_MS);
    expect(late.failures).toBeCloseTo(0.5);
  });

  it("orders agents most reliable first, unknown agents at the prior", () => {
    const records = new Map<string, ReliabilityRecord>();
    const put = (id: string, outcomes: boolean[]) =>
      records.set(reliabilityKey(id, "cap"), observeMany(undefined, id, outcomes, t0));
    put("steady", new Array(20).fill(true));
    put("flaky", [true, false, false, false, true, false]);
    put("lucky", [true]);
    const order = orderByReliability(["flaky", "new", "lucky", "steady"], "cap", records, t0);
    expect(order.map((s) => s.agentId)).toEqual(["steady", "lucky", "new", "flaky"]);
    expect(order.find((s) => s.agentId === "new")).toMatchObject({ score: 0.5, observations: 0 });
  });

  it("turns a goal's agent results into observations", () => {
    const obs = reliabilityObservations(
      [{ agentId: "a", capability: "c", success: true, latencyMs: 5 }],
      t0,
    );
    expect(obs).toEqual([{ agentId: "a", capability: "c", success: true, at: t0 }]);
  });
});
