import { describe, expect, it } from "vitest";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { evaluateCanary } from "./drift-guard.js";

describe("drift guard", () => {
  it("promotes a credibly better canary", () => {
    const v = evaluateCanary({ successes: 180, failures: 20 }, { successes: 800, failures: 200 });
    expect(v.action).toBe("promote");
    expect(v.pNoWorse).toBeGreaterThan(0.99);
    expect(v.reason).toMatch(/P\(canary ≥ baseline − 0.02\)/);
  });

  it("promotes an equal canary once the evidence is tight enough", () => {
    const v = evaluateCanary(
      { successes: 4250, failures: 750 },
      { successes: 8500, failures: 1500 },
    );
    expect(v.action).toBe("promote");
  });

  it("rolls back a credibly worse canary", () => {
    const v = evaluateCanary({ successes: 30, failures: 20 }, { successes: 850, failures: 150 });
    expect(v.action).toBe("rollback");
    expect(v.pWorse).toBeGreaterThan(0.99);
    expect(v.canary.mean).toBeCloseTo(31 / 52);
  });

  it("waits for evidence: too few samples, or undecided posteriors", () => {
    expect(
      evaluateCanary({ successes: 5, failures: 15 }, { successes: 900, failures: 100 }).action,
    ).toBe("continue");
    const close = evaluateCanary({ successes: 80, failures: 20 }, { successes: 85, failures: 15 });
    expect(close.action).toBe("continue");
    expect(close.reason).toMatch(/undecided/);
  });

  it("is deterministic for the same counts and agrees with the normal approximation", () => {
    const a = evaluateCanary({ successes: 90, failures: 10 }, { successes: 85, failures: 15 });
    const b = evaluateCanary({ successes: 90, failures: 10 }, { successes: 85, failures: 15 });
    expect(a).toEqual(b);
    // P(c − b ≥ −0.02) with c ~ 91/102, b ~ 86/102: normal approximation ≈ 0.93.
    expect(a.pNoWorse).toBeGreaterThan(0.9);
    expect(a.pNoWorse).toBeLessThan(0.96);
  });

  it("rejects negative counts and nonsense options with INVALID_ARGUMENT", () => {
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as MeshError).code;
      }
    };
    expect(
      code(() => evaluateCanary({ successes: -1, failures: 0 }, { successes: 0, failures: 0 })),
    ).toBe(Code.InvalidArgument);
    expect(
      code(() =>
        evaluateCanary(
          { successes: 1, failures: 0 },
          { successes: 0, failures: 0 },
          { threshold: 2 },
        ),
      ),
    ).toBe(Code.InvalidArgument);
    expect(() =>
      evaluateCanary({ successes: Number.NaN, failures: 0 }, { successes: 0, failures: 0 }),
    ).toThrow(MeshError);
  });
});
