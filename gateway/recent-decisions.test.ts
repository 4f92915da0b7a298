import { describe, expect, it } from "vitest";
import type { PolicyInput } from "../lib/policy/input.js";
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

  it("records a public call's decision from the input the policy read", () => {
    const log = createRecentDecisions();
    const input: PolicyInput = {
      method: {
        service: "agentmesh.v1.ExecutorService",
        name: "GetGoal",
        full: "agentmesh.v1.ExecutorService/GetGoal",
        kind: "unary",
      },
      principal: { tenant_id: "acme", subject: "key:k1", roles: ["goals.read"] },
      resource: { tenant_id: "acme", goal_id: "g-1" },
      request: { tenant_id: "acme", goal_id: "g-1" },
      time: { unix_ms: 42 },
    };
    log.observe(input, { allow: false, reason: "no", principalTrusted: false });
    // A decision without a principal is no public call: not kept.
    log.observe(
      { ...input, principal: undefined },
      { allow: true, reason: "", principalTrusted: false },
    );
    expect(log.list()).toEqual([
      {
        time: 42,
        tenantId: "acme",
        subject: "key:k1",
        roles: ["goals.read"],
        method: "agentmesh.v1.ExecutorService/GetGoal",
        allow: false,
        reason: "no",
        input: { resource: input.resource, request: input.request },
      },
    ]);
  });
});
