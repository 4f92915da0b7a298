import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { SubmitGoalRequestSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { PutPlaybookRequestSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { DecisionCache } from "./decision-cache.js";
import { buildPolicyInput, decisionCacheKey, methodPlan, type PolicyInput } from "./input.js";
import { requestView } from "./request-view.js";
import { meshMethods, meshPeer, principal, sampleRequest } from "./testing.js";

const method = (name: string) => meshMethods.find((m) => m.name === name)!;

describe("methodPlan", () => {
  it("finds resource fields by name, shallowest first, once per method", () => {
    const paths = (name: string) =>
      Object.fromEntries(methodPlan(method(name)).fields.map((f) => [f.key, f.path.join(".")]));
    expect(paths("GetGoal")).toEqual({ tenant_id: "tenantId", goal_id: "goalId" });
    expect(paths("ChooseStrategy")).toEqual({
      tenant_id: "context.tenantId",
      goal_id: "goalId",
      goal_kind: "context.goalKind",
    });
    // The request's own `kind` is the goal kind; a nested `kind` (SubGoal's) is not.
    expect(paths("SubmitGoal")).toEqual({ tenant_id: "tenantId", goal_kind: "kind" });
    expect(paths("PutPlaybook")).toEqual({ tenant_id: "tenantId", goal_kind: "playbook.goalKind" });
    expect(paths("RecordOutcome")).toEqual({
      tenant_id: "outcome.context.tenantId",
      goal_id: "outcome.goalId",
      goal_kind: "outcome.context.goalKind",
    });
    expect(paths("CreateTenant")).toEqual({ tenant_id: "tenant.tenantId" });
    expect(paths("ListTenants")).toEqual({});
    const capabilityPaths = (name: string) =>
      methodPlan(method(name)).capabilities.map((c) =>
        c.steps.map((s) => s.key + (s.list ? "[]" : "")).join("."),
      );
    // Conformance examples name capabilities of the card too (ADR-015): granted like its skills.
    expect(capabilityPaths("RegisterAgent")).toEqual([
      "card.skills[].capability",
      "card.conformance[].capability",
    ]);
    expect(capabilityPaths("PutPlaybook")).toEqual(["playbook.strategies[].steps[].capability"]);
    expect(capabilityPaths("GetGoal")).toEqual([]);
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
      request: {
        card: { skills: [{ capability: "text.a" }, { capability: "text.b" }] },
      },
      time: { unix_ms: 1000 },
    });
  });

  it("collects every step capability of a playbook, and the goal kind", () => {
    const put = method("PutPlaybook");
    const request = create(PutPlaybookRequestSchema, {
      tenantId: "acme",
      playbook: {
        goalKind: "ops",
        strategies: [
          { name: "a", steps: [{ stepId: "x", capability: "util.echo" }] },
          {
            name: "b",
            steps: [
              { stepId: "y", capability: "shell.exec", input: { cmd: "rm -rf /" } },
              { stepId: "z", subGoal: { kind: "child" } },
            ],
          },
        ],
      },
    });
    const input = buildPolicyInput({
      peer: meshPeer("cli"),
      principal: undefined,
      method: put,
      request,
    });
    expect(input.resource).toEqual({
      tenant_id: "acme",
      goal_kind: "ops",
      capabilities: ["util.echo", "shell.exec", ""],
    });
    // Free-form step input (a Struct) stays out of the policy's view.
    expect(input.request).toEqual({
      tenant_id: "acme",
      playbook: {
        goal_kind: "ops",
        strategies: [
          { name: "a", steps: [{ step_id: "x", capability: "util.echo" }] },
          {
            name: "b",
            steps: [
              { step_id: "y", capability: "shell.exec" },
              { step_id: "z", sub_goal: { kind: "child" } },
            ],
          },
        ],
      },
    });
    expect(input.request_truncated).toBeUndefined();
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

describe("input.request", () => {
  it("holds set fields with wire names, enums by name, times in ms; no secrets, no free-form input", () => {
    const request = create(SubmitGoalRequestSchema, {
      tenantId: "acme",
      kind: "summarize",
      input: { text: "a private document" },
      priority: 3,
      deadline: { seconds: 1767225600n, nanos: 5_000_000 },
      labels: { team: "blue", token: "s3cret" },
    });
    expect(requestView(SubmitGoalRequestSchema, request)).toEqual({
      value: {
        tenant_id: "acme",
        kind: "summarize",
        priority: 3,
        deadline: 1767225600005,
        labels: { team: "blue" },
      },
      truncated: false,
    });
  });

  it("is bounded: long strings, long lists and deep or wide requests are cut and say so", () => {
    const long = create(SubmitGoalRequestSchema, { tenantId: "x".repeat(10_000), kind: "k" });
    const v = requestView(SubmitGoalRequestSchema, long);
    expect(v.truncated).toBe(true);
    expect((v.value.tenant_id as string).length).toBe(256);
    const wide = create(PutPlaybookRequestSchema, {
      tenantId: "acme",
      playbook: {
        strategies: Array.from({ length: 100 }, (_, i) => ({
          name: `s${i}`,
          steps: Array.from({ length: 100 }, (_, j) => ({ stepId: `${j}`, capability: "c" })),
        })),
      },
    });
    const w = requestView(PutPlaybookRequestSchema, wide);
    expect(w.truncated).toBe(true);
    expect(JSON.stringify(w.value).length).toBeLessThan(64 * 1024);
    // A truncated input is never served from the cache.
    const input = buildPolicyInput({
      peer: meshPeer("cli"),
      principal: undefined,
      method: method("PutPlaybook"),
      request: wide,
    });
    expect(input.request_truncated).toBe(true);
    expect(decisionCacheKey(input)).toBeUndefined();
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
      variant((i) => (i.resource.goal_kind = "other")),
      variant((i) => (i.request = { ...i.request, priority: 9 })),
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
