import { describe, expect, it } from "vitest";
import { DecisionCache } from "./decision-cache.js";
import { buildPolicyInput, decisionCacheKey, methodPlan, type PolicyInput } from "./input.js";
import { meshMethods, meshPeer, principal, sampleRequest } from "./testing.js";

const method = (name: string) => meshMethods.find((m) => m.name === name)!;

describe("methodPlan", () => {
  it("finds resource fields by name, shallowest first, once per method", () => {
    const paths = (name: string) =>
      Object.fromEntries(methodPlan(method(name)).fields.map((f) => [f.key, f.path.join(".")]));
    expect(paths("GetGoal")).toEqual({ tenant_id: "tenantId", goal_id: "goalId" });
    expect(paths("ChooseStrategy")).toEqual({ tenant_id: "context.tenantId", goal_id: "goalId" });
    expect(paths("RecordOutcome")).toEqual({
      tenant_id: "outcome.context.tenantId",
      goal_id: "outcome.goalId",
    });
    expect(paths("CreateTenant")).toEqual({ tenant_id: "tenant.tenantId" });
    expect(paths("ListTenants")).toEqual({});
    expect(methodPlan(method("RegisterAgent")).capabilities).toEqual({
      path: ["card", "skills"],
      element: "capability",
    });
    expect(methodPlan(method("GetGoal"))).toBe(methodPlan(method("GetGoal")));
  });

  it("builds the input document with wire names", () => {
    const input = buildPolicyInput(
      {
        peer: meshPeer("agent-text"),
        principal: principal("acme", "ada", ["tenant.admin"]),
        method: method("RegisterAgent"),
        request: sampleRequest(method("RegisterAgent"), { capabilities: ["text.a", "text.b"] }),
      },
      1000,
    );
    expect(input).toEqual({
      peer: {
        spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/agent-text",
        trust_domain: "agentmesh.local",
        namespace: "agentmesh",
        name: "agent-text",
      },
      principal: { tenant_id: "acme", subject: "ada", roles: ["tenant.admin"] },
      method: {
        service: "agentmesh.v1.RegistryService",
        name: "RegisterAgent",
        full: "agentmesh.v1.RegistryService/RegisterAgent",
        kind: "unary",
      },
      resource: { capabilities: ["text.a", "text.b"] },
      time: { unix_ms: 1000 },
    });
  });

  it("keeps tenant-scoped keys present (empty) when the request is absent or unset", () => {
    const get = method("WatchGoal");
    const call = { peer: meshPeer("cli"), principal: undefined, method: get };
    expect(buildPolicyInput({ ...call, request: undefined }).resource).toEqual({
      tenant_id: "",
      goal_id: "",
    });
  });
});

describe("decisionCacheKey", () => {
  const base = buildPolicyInput(
    {
      peer: meshPeer("gateway"),
      principal: principal("acme", "ada", ["a", "b"]),
      method: method("GetGoal"),
      request: sampleRequest(method("GetGoal")),
    },
    0,
  );
  const variant = (patch: (i: PolicyInput) => void) => {
    const copy = structuredClone(base);
    patch(copy);
    return decisionCacheKey(copy);
  };

  it("differs whenever anything but time differs", () => {
    const key = decisionCacheKey(base);
    expect(key).toBeDefined();
    expect(variant((i) => (i.time.unix_ms = 99))).toBe(key);
    const others = [
      variant((i) => (i.resource.tenant_id = "globex")),
      variant((i) => (i.resource.goal_id = "g-2")),
      variant((i) => (i.principal!.roles = ["a"])),
      variant((i) => (i.principal!.roles = ["a", "b", ""])),
      variant((i) => (i.principal = undefined)),
      variant((i) => (i.peer = undefined)),
      variant((i) => (i.method.full = "x")),
      variant((i) => (i.resource.capabilities = [])),
      variant((i) => (i.resource.capabilities = [""])),
    ];
    expect(new Set([key, ...others]).size).toBe(others.length + 1);
  });

  it("refuses inputs that smuggle the separator or are huge", () => {
    expect(variant((i) => (i.resource.tenant_id = "acme\u0000"))).toBeUndefined();
    expect(variant((i) => (i.resource.goal_id = "x".repeat(5000)))).toBeUndefined();
  });
});

describe("DecisionCache", () => {
  const d = { allow: true, reason: "ok", principalTrusted: false };
  it("evicts the least recently used entry and expires old ones", () => {
    const cache = new DecisionCache({ maxEntries: 2, ttlMs: 100 });
    cache.set("a", d, 0);
    cache.set("b", d, 0);
    expect(cache.get("a", 1)).toBe(d); // a is now the most recent
    cache.set("c", d, 1);
    expect(cache.get("b", 2)).toBeUndefined();
    expect(cache.get("a", 2)).toBe(d);
    expect(cache.get("c", 101)).toBeUndefined(); // expired
    expect(cache.size).toBe(1);
    const off = new DecisionCache({ maxEntries: 0 });
    off.set("a", d);
    expect(off.get("a")).toBeUndefined();
  });
});
