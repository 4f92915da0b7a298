import { describe, expect, it } from "vitest";
import { formatRoute, parseRoute } from "./route.js";

describe("routes", () => {
  it("round-trips views, goals and filters; unknown hashes are the goals list", () => {
    for (const hash of [
      "#/goals?status=running&kind=diamond",
      "#/goals/abc-1",
      "#/agents",
      "#/admin",
    ]) {
      expect(formatRoute(parseRoute(hash))).toBe(hash);
    }
    expect(parseRoute("")).toEqual({ view: "goals", query: {} });
    expect(parseRoute("#/nope").view).toBe("goals");
    expect(parseRoute("#/goals/a%2Fb").goalId).toBe("a/b");
  });
});
