import { describe, expect, it } from "vitest";
import { matchesDecision } from "./decision-filter.js";

const denial = {
  tenantId: "acme",
  subject: "key:k1",
  method: "agentmesh.v1.ExecutorService/SubmitGoal",
  allow: false,
};

describe("matchesDecision", () => {
  it("filters by decision, part of tenant/caller in any case, and the method in any of its spellings", () => {
    expect(matchesDecision(denial, {})).toBe(true);
    expect(matchesDecision(denial, { decision: "denied" })).toBe(true);
    expect(matchesDecision(denial, { decision: "allowed" })).toBe(false);
    expect(matchesDecision(denial, { who: " ACME/key" })).toBe(true);
    expect(matchesDecision(denial, { who: "globex" })).toBe(false);
    for (const method of [denial.method, "ExecutorService/SubmitGoal", "SubmitGoal"]) {
      expect(matchesDecision(denial, { method })).toBe(true);
    }
    for (const method of ["Goal", "executorservice/submitgoal", "RegistryService/SubmitGoal"]) {
      expect(matchesDecision(denial, { method })).toBe(false);
    }
  });
});
