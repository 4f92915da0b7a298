import { describe, expect, it } from "vitest";
import {
  CONTEXTUAL_TARGETS,
  contextualBench,
  contextualTargetsMet,
} from "./learning-contextual.js";

// The full 20 seeds of `bench learning`, but only the two selectors the
// targets compare (≈1.5 s): the figures are deterministic by seed.
describe("bench learning, contextual instance", () => {
  it("reaches 95 % of the oracle, beats Thompson by 15 points and recovers from drift within 200 goals", () => {
    const f = contextualBench(20, ["contextual", "thompson"]);
    expect(f.contextual!.learned).toBeGreaterThanOrEqual(CONTEXTUAL_TARGETS.learned);
    expect(f.contextual!.learned - f.thompson!.learned).toBeGreaterThanOrEqual(
      CONTEXTUAL_TARGETS.marginOverThompson,
    );
    expect(f.contextual!.recoveryGoals).toBeLessThanOrEqual(CONTEXTUAL_TARGETS.recoveryGoals);
    expect(f.contextual!.recovered).toBeGreaterThanOrEqual(0.95);
    expect(contextualTargetsMet(f)).toBe(true);
  });

  it("needs forgetting to recover", () => {
    const f = contextualBench(5, ["contextual-no-forgetting"]);
    expect(f["contextual-no-forgetting"]!.recoveryGoals).toBeGreaterThan(500);
  });
});
