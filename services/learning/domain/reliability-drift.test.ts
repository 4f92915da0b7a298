import { describe, expect, it } from "vitest";
import { createReliabilityDrift } from "./reliability-drift.js";

const solo = { tenantId: "acme", goalKind: "report", strategy: "solo" };
const team = { tenantId: "beta", goalKind: "brief", strategy: "team" };
const result = (success: boolean, capability = "text.summarize") => [
  { agentId: "a1", capability, success },
];

describe("reliability drift", () => {
  it("reports a drop once, with every strategy seen using the capability", () => {
    const drift = createReliabilityDrift();
    for (let i = 0; i < 100; i++) {
      expect(drift.observe(i % 2 ? solo : team, result(i % 10 !== 0))).toEqual([]);
    }
    const drops = [];
    let failures = 0;
    while (drops.length === 0 && failures < 20) {
      failures++;
      drops.push(...drift.observe(solo, result(false)));
    }
    // A handful of failures after a 90 % record, not the ~60 that would drag its mean down.
    expect(failures).toBeLessThanOrEqual(6);
    expect(drops).toHaveLength(1);
    expect(drops[0]).toMatchObject({ agentId: "a1", capability: "text.summarize" });
    expect(drops[0]!.longRate).toBeGreaterThan(0.85);
    expect(drops[0]!.recentRate).toBeLessThan(0.45);
    expect(drops[0]!.strategies).toEqual(expect.arrayContaining([solo, team]));
    // Started again from the recent results: further failures are not a new drop.
    for (let i = 0; i < 20; i++) expect(drift.observe(solo, result(false))).toEqual([]);
  });

  it("ignores ordinary bad luck and other capabilities", () => {
    const drift = createReliabilityDrift();
    for (let i = 0; i < 200; i++) drift.observe(solo, result(i % 10 !== 0));
    // Two failures in a row at a 90 % rate happen; the recent memory needs more evidence of a change.
    expect(drift.observe(solo, result(false))).toEqual([]);
    expect(drift.observe(solo, result(false))).toEqual([]);
    expect(drift.observe(solo, result(true))).toEqual([]);
    // A new capability has no record to fall from.
    for (let i = 0; i < 10; i++)
      expect(drift.observe(solo, result(false, "text.translate"))).toEqual([]);
  });

  it("stays bounded", () => {
    const drift = createReliabilityDrift({ maxAgents: 3, maxStrategies: 2 });
    for (let i = 0; i < 50; i++) {
      drift.observe({ ...solo, strategy: `s${i % 5}` }, [
        { agentId: `a${i % 7}`, capability: `c${i % 4}`, success: true },
      ]);
    }
    // Nothing to assert on the inside beyond not growing: a drop lists ≤ maxStrategies scopes.
    for (let i = 0; i < 100; i++) drift.observe({ ...solo, strategy: "x" }, result(true, "c9"));
    const drops = [];
    for (let i = 0; i < 10; i++) {
      drops.push(...drift.observe({ ...solo, strategy: `y${i}` }, result(false, "c9")));
    }
    expect(drops).toHaveLength(1);
    expect(drops[0]!.strategies.length).toBeLessThanOrEqual(2);
  });
});
