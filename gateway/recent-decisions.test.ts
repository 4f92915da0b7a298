import { describe, expect, it } from "vitest";
import { createRecentDecisions, type RecentDecision } from "./recent-decisions.js";

const decision = (n: number, allow: boolean, tenantId = "acme"): RecentDecision => ({
  time: n,
  tenantId,
  subject: `k${n}`,
  roles: [],
  method: "agentmesh.v1.ExecutorService/GetGoal",
  allow,
  reason: allow ? "allowed" : "no",
  input: {},
});

describe("recent decisions", () => {
  it("keeps the newest of each kind, denials apart from a flood of allowed calls", () => {
    const log = createRecentDecisions(5, 2);
    log.record(decision(1, false));
    log.record(decision(2, false, "globex"));
    for (let n = 3; n <= 20; n++) log.record(decision(n, true));
    expect(log.list().map((d) => d.time)).toEqual([20, 19, 18, 17, 16]);
    expect(log.list({ deniedOnly: true }).map((d) => d.time)).toEqual([2, 1]);
    expect(log.list({ deniedOnly: true, tenantId: "acme" }).map((d) => d.time)).toEqual([1]);
    expect(log.list({ limit: 2 }).map((d) => d.time)).toEqual([20, 19]);
  });
});
