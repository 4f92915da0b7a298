import { describe, expect, it } from "vitest";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import {
  applyVerdict,
  canaryVersion,
  currentVersion,
  nextVersionId,
  publishVersion,
  recordServed,
  rollbackTo,
  routeVersion,
  withoutCanary,
} from "./parameter-versions.js";

const t0 = Date.UTC(2025, 0, 1);

function codeOf(f: () => unknown): Code | undefined {
  try {
    f();
  } catch (err) {
    if (err instanceof MeshError) return err.code;
    throw err;
  }
  return undefined;
}

describe("parameters versions", () => {
  it("makes the first version current and later ones canaries", () => {
    let vs = publishVersion([], { version: "v1", runId: "r1", createdAt: t0 });
    expect(currentVersion(vs)).toMatchObject({ version: "v1", trafficFraction: 1 });
    expect(routeVersion([], "g")).toBeUndefined();
    vs = recordServed(vs, "v1", true);
    vs = publishVersion(vs, {
      version: nextVersionId(vs),
      runId: "r2",
      createdAt: t0 + 1,
      canaryFraction: 0.2,
    });
    expect(canaryVersion(vs)).toMatchObject({
      version: "v2",
      state: "CANARY",
      trafficFraction: 0.2,
    });
    // The current's counters restart so both compare the same window.
    expect(currentVersion(vs)).toMatchObject({ version: "v1", trafficFraction: 0.8, successes: 0 });
    expect(vs.map((v) => v.version)).toEqual(["v2", "v1"]);
  });

  it("rolls back an undecided canary when a newer one is published", () => {
    let vs = publishVersion([], { version: "v1", runId: "r1", createdAt: t0 });
    vs = publishVersion(vs, { version: "v2", runId: "r2", createdAt: t0 });
    vs = publishVersion(vs, { version: "v3", runId: "r3", createdAt: t0 });
    expect(vs.find((v) => v.version === "v2")).toMatchObject({
      state: "ROLLED_BACK",
      trafficFraction: 0,
    });
    expect(canaryVersion(vs)?.version).toBe("v3");
    expect(codeOf(() => publishVersion(vs, { version: "v3", runId: "x", createdAt: t0 }))).toBe(
      Code.AlreadyExists,
    );
    expect(
      codeOf(() =>
        publishVersion(vs, { version: "v9", runId: "x", createdAt: t0, canaryFraction: 2 }),
      ),
    ).toBe(Code.InvalidArgument);
  });

  it("routes a stable canary fraction by goal id", () => {
    let vs = publishVersion([], { version: "v1", runId: "r1", createdAt: t0 });
    vs = publishVersion(vs, { version: "v2", runId: "r2", createdAt: t0, canaryFraction: 0.1 });
    let canary = 0;
    for (let i = 0; i < 10_000; i++) {
      const route = routeVersion(vs, `goal-${i}`)!;
      if (route.canary) {
        canary++;
        expect(route.version).toBe("v2");
      }
    }
    expect(canary).toBeGreaterThan(900);
    expect(canary).toBeLessThan(1100);
    // A tenant out of canaries (flag learning.canary=false) is routed without the canary.
    for (let i = 0; i < 1000; i++) {
      expect(routeVersion(withoutCanary(vs), `goal-${i}`)).toEqual({
        version: "v1",
        canary: false,
      });
    }
    expect(routeVersion(vs, "goal-7")).toEqual(routeVersion(vs, "goal-7"));
  });

  it("applies promote and rollback verdicts", () => {
    let vs = publishVersion([], { version: "v1", runId: "r1", createdAt: t0 });
    vs = publishVersion(vs, { version: "v2", runId: "r2", createdAt: t0 });
    vs = recordServed(recordServed(vs, "v2", true), "v2", false);
    expect(canaryVersion(vs)).toMatchObject({ successes: 1, failures: 1 });
    expect(applyVerdict(vs, { action: "continue", reason: "" })).toEqual(vs);

    const promoted = applyVerdict(vs, { action: "promote", reason: "better" });
    expect(currentVersion(promoted)).toMatchObject({
      version: "v2",
      trafficFraction: 1,
      note: "better",
    });
    expect(promoted.find((v) => v.version === "v1")?.state).toBe("RETIRED");
    expect(codeOf(() => applyVerdict(promoted, { action: "promote", reason: "" }))).toBe(
      Code.FailedPrecondition,
    );

    const rolled = applyVerdict(vs, { action: "rollback", reason: "worse" });
    expect(currentVersion(rolled)).toMatchObject({ version: "v1", trafficFraction: 1 });
    expect(rolled.find((v) => v.version === "v2")).toMatchObject({
      state: "ROLLED_BACK",
      note: "worse",
    });
  });

  it("rolls back to any earlier version on request", () => {
    let vs = publishVersion([], { version: "v1", runId: "r1", createdAt: t0 });
    vs = publishVersion(vs, { version: "v2", runId: "r2", createdAt: t0 });
    vs = applyVerdict(vs, { action: "promote", reason: "ok" });
    vs = publishVersion(vs, { version: "v3", runId: "r3", createdAt: t0 });
    const back = rollbackTo(vs, "v1", "bad deploy");
    expect(currentVersion(back)?.version).toBe("v1");
    expect(
      back
        .filter((v) => v.state === "ROLLED_BACK")
        .map((v) => v.version)
        .sort(),
    ).toEqual(["v2", "v3"]);
    expect(codeOf(() => rollbackTo(vs, "v99", ""))).toBe(Code.NotFound);
    expect(rollbackTo(back, "v1", "again")).toEqual(back);
    expect(nextVersionId(back)).toBe("v4");
  });
});
