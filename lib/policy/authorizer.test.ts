/**
 * The authorization matrix at the authorizer level, with the committed
 * compiled policy: every method × every kind of caller, allowed exactly where
 * the mesh's grants say. The expectations below are written from the spec
 * (issue 4), not read from policies/data.json, so a data mistake fails here.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescMethod, Message } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import type { Authorizer, Decision, PeerIdentity } from "../rpc/authorizer.js";
import { dispatchInput } from "./actions.js";
import { createPolicyAuthorizer, createPolicyCheck, observeDecisions } from "./authorizer.js";
import { createDecisionLog, type DecisionLogEntry } from "./decision-log.js";
import { openPolicyEngine, type PolicyEngine } from "./engine.js";
import type { PolicyInput } from "./input.js";
import {
  committedBundlePath,
  foreignMethod,
  meshMethods,
  meshPeer,
  principal,
  sampleRequest,
} from "./testing.js";

const full = (m: DescMethod) => `${m.parent.typeName}/${m.name}`;
const reg = (n: string) => `agentmesh.v1.RegistryService/${n}`;
const plan = (n: string) => `agentmesh.v1.PlannerService/${n}`;
const exe = (n: string) => `agentmesh.v1.ExecutorService/${n}`;
const learn = (n: string) => `agentmesh.v1.LearningService/${n}`;
const admin = (n: string) => `agentmesh.v1.AdminService/${n}`;

const executorGrants = new Set([
  plan("PlanGoal"),
  plan("ExplainPlan"),
  reg("FindAgents"),
  reg("GetAgent"),
  reg("ListAgents"),
  learn("RecordOutcome"),
  learn("ChooseStrategy"),
  ...["SubmitGoal", "GetGoal", "ListGoals", "CancelGoal", "WatchGoal"].map(exe),
]);
const serviceGrants: Record<string, Set<string> | "all"> = {
  executor: executorGrants,
  planner: new Set([
    reg("FindAgents"),
    reg("ListAgents"),
    reg("GetAgent"),
    learn("ChooseStrategy"),
    learn("GetAgentReliability"),
  ]),
  registry: new Set([learn("GetAgentReliability")]),
  learning: new Set([reg("ListAgents")]),
  gateway: new Set(),
  cli: "all",
};
const agentGrants = new Set(
  [
    "RegisterAgent",
    "Heartbeat",
    "DeregisterAgent",
    "RegisterTool",
    "FindAgents",
    "ReportConformance",
  ].map(reg),
);
const goalsRead = new Set([
  exe("GetGoal"),
  exe("ListGoals"),
  exe("WatchGoal"),
  ...["ListAgents", "GetAgent", "FindAgents", "WatchAgents", "ListTools"].map(reg),
  plan("ListPlaybooks"),
  plan("GetPlaybook"),
  plan("ExplainPlan"),
  learn("GetStrategyStats"),
  learn("ListExperiences"),
  learn("GetAgentReliability"),
]);
const goalsWrite = new Set([...goalsRead, exe("SubmitGoal"), exe("CancelGoal")]);
const tenantAdmin = new Set([
  ...goalsWrite,
  plan("PutPlaybook"),
  plan("DeletePlaybook"),
  admin("GetTenant"),
  admin("GetTenantUsage"),
  admin("ListPolicyDecisions"),
  admin("CreateApiKey"),
  admin("ListApiKeys"),
  admin("RevokeApiKey"),
]);
/** Methods whose request names no tenant: cross-tenant principals pass the tenant check. */
const unscoped = new Set([
  ...[
    "RegisterAgent",
    "Heartbeat",
    "DeregisterAgent",
    "GetAgent",
    "ListAgents",
    "FindAgents",
    "WatchAgents",
    "RegisterTool",
    "ListTools",
    "ReportConformance",
  ].map(reg),
  learn("GetAgentReliability"),
  learn("TriggerTraining"),
  learn("RollbackParameters"),
  admin("ListTenants"),
]);

interface Caller {
  label: string;
  peer: PeerIdentity;
  principal?: Principal;
  allowed(method: string): boolean;
}

const callers: Caller[] = [
  ...Object.entries(serviceGrants).map(([name, grants]) => ({
    label: name,
    peer: meshPeer(name),
    allowed: (m: string) => grants === "all" || grants.has(m),
  })),
  { label: "agent-text", peer: meshPeer("agent-text"), allowed: (m) => agentGrants.has(m) },
  {
    label: "gateway + acme tenant.admin for acme",
    peer: meshPeer("gateway"),
    principal: principal("acme", "ada", ["tenant.admin"]),
    allowed: (m) => tenantAdmin.has(m),
  },
  {
    label: "gateway + acme goals.read for acme",
    peer: meshPeer("gateway"),
    principal: principal("acme", "rita", ["goals.read"]),
    allowed: (m) => goalsRead.has(m),
  },
  {
    label: "gateway + globex tenant.admin for acme",
    peer: meshPeer("gateway"),
    principal: principal("globex", "gus", ["tenant.admin"]),
    allowed: (m) => tenantAdmin.has(m) && unscoped.has(m),
  },
  {
    label: "gateway + platform.admin",
    peer: meshPeer("gateway"),
    principal: principal("ops", "root", ["platform.admin"]),
    allowed: () => true,
  },
  {
    label: "unknown SPIFFE ID",
    peer: meshPeer("intruder"),
    allowed: () => false,
  },
  {
    label: "cli of a foreign trust domain",
    peer: meshPeer("cli", "evil.example"),
    allowed: () => false,
  },
];

let engine: PolicyEngine;
let authorize: Authorizer;

beforeAll(async () => {
  engine = await openPolicyEngine({ path: committedBundlePath, watch: false });
  expect(engine.ready).toBe(true);
  authorize = createPolicyAuthorizer(engine);
});
afterAll(() => engine.close());

const decideRaw = (caller: Caller, method: DescMethod, request: Message | undefined) =>
  authorize({ peer: caller.peer, principal: caller.principal, method, request }) as Decision;
const decide = (caller: Caller, method: DescMethod, request = sampleRequest(method)) =>
  decideRaw(caller, method, request);

describe("authorization matrix (committed bundle)", () => {
  it("covers every method of the five services", () => {
    expect(meshMethods.length).toBe(39);
  });

  for (const caller of callers) {
    it(`${caller.label}: allowed exactly where granted`, () => {
      const wrong: string[] = [];
      for (const method of meshMethods) {
        const d = decide(caller, method);
        if (d.allow !== caller.allowed(full(method))) {
          wrong.push(`${full(method)} → ${d.allow ? "allowed" : "denied"}: ${d.reason}`);
        }
        expect(d.reason).not.toBe("");
      }
      expect(wrong).toEqual([]);
    });
  }

  it("health and reflection are open to every known mesh identity, not to strangers", () => {
    const methods = [
      foreignMethod("grpc.health.v1.Health", "Check"),
      foreignMethod("grpc.health.v1.Health", "Watch"),
      foreignMethod("grpc.reflection.v1.ServerReflection", "ServerReflectionInfo"),
      foreignMethod("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo"),
    ];
    for (const method of methods) {
      for (const caller of callers) {
        const known = caller.label !== "unknown SPIFFE ID" && !caller.label.includes("foreign");
        expect(decideRaw(caller, method, undefined).allow, `${caller.label} ${full(method)}`).toBe(
          known,
        );
      }
      const mcp = { label: "mcp", peer: meshPeer("agent-mcp-everything"), allowed: () => true };
      expect(decideRaw(mcp, method, undefined).allow).toBe(true);
    }
  });
});

describe("decisions in detail", () => {
  const [registerAgent, submitGoal, getGoal] = [
    meshMethods.find((m) => m.name === "RegisterAgent")!,
    meshMethods.find((m) => m.name === "SubmitGoal")!,
    meshMethods.find((m) => m.name === "GetGoal")!,
  ];
  const agent = (name: string): Caller => ({
    label: name,
    peer: meshPeer(name),
    allowed: () => true,
  });

  it("agents register only the capabilities the data grants them", () => {
    const ok = (name: string, caps: string[]) =>
      decide(agent(name), registerAgent, sampleRequest(registerAgent, { capabilities: caps }));
    expect(ok("agent-text", ["text.summarize", "text.translate"]).allow).toBe(true);
    expect(ok("agent-data", ["data.csv.parse"]).allow).toBe(true);
    expect(ok("agent-http", ["http.fetch"]).allow).toBe(true);
    expect(ok("agent-shell", ["shell.exec"]).allow).toBe(true);
    expect(ok("agent-util", ["util.uuid"]).allow).toBe(true);
    expect(ok("agent-test", ["test.echo"]).allow).toBe(true);
    expect(ok("agent-mcp-everything", ["mcp.everything.echo"]).allow).toBe(true);
    const d = ok("agent-text", ["text.summarize", "shell.exec"]);
    expect(d).toMatchObject({
      allow: false,
      reason:
        'peer spiffe://agentmesh.local/ns/agentmesh/sa/agent-text may not register capabilities shell.exec (grant them to "agent-text" in agent_capabilities of policies/data.json)',
      principalTrusted: false,
    });
    expect(ok("agent-mcp-everything", ["mcp.github.search"]).allow).toBe(false);
    expect(ok("agent-http", ["http.fetch.all"]).allow).toBe(false);
  });

  it("says why, in words, and trusts principals only from the gateway", () => {
    const executor = callers.find((c) => c.label === "executor")!;
    expect(decide(callers.find((c) => c.label === "planner")!, submitGoal)).toMatchObject({
      allow: false,
      reason:
        "peer spiffe://agentmesh.local/ns/agentmesh/sa/planner may not call agentmesh.v1.ExecutorService/SubmitGoal",
      principalTrusted: false,
    });
    const globex = callers.find((c) => c.label.startsWith("gateway + globex"))!;
    expect(decide(globex, getGoal)).toMatchObject({
      allow: false,
      reason: "tenant globex may not access tenant acme",
      principalTrusted: true,
    });
    // An executor forwarding a principal is judged as itself; the principal is not trusted.
    const forwarded = { ...executor, principal: principal("ops", "root", ["platform.admin"]) };
    expect(decide(forwarded, submitGoal)).toMatchObject({ allow: true, principalTrusted: false });
    const gateway = callers.find((c) => c.label === "gateway")!;
    expect(decide(gateway, getGoal).reason).toBe(
      "peer spiffe://agentmesh.local/ns/agentmesh/sa/gateway may not call agentmesh.v1.ExecutorService/GetGoal without a principal",
    );
  });

  it("denies a call without a verified peer", () => {
    const d = authorize({
      peer: undefined,
      principal: undefined,
      method: getGoal,
      request: undefined,
    });
    expect(d).toMatchObject({
      allow: false,
      reason: "caller has no valid mesh SPIFFE ID",
      principalTrusted: false,
    });
  });

  it("caches without mixing up inputs, and a hit returns the same answer", () => {
    const reader = callers.find((c) => c.label.includes("goals.read"))!;
    const req = (tenant: string) => sampleRequest(getGoal, { tenant_id: tenant });
    for (let i = 0; i < 3; i++) {
      expect(decide(reader, getGoal, req("acme")).allow).toBe(true);
      expect(decide(reader, getGoal, req("globex")).allow).toBe(false);
      // A separator smuggled into a field is never served from someone else's entry.
      expect(decide(reader, getGoal, req("acme\u0000")).allow).toBe(false);
    }
    expect(decide(reader, getGoal, req("acme"))).toMatchObject({ allow: true, cached: true });
    expect(decide(reader, getGoal, req("acme\u0000"))).toMatchObject({ cached: false });
  });

  it("tells an observer of each decision with the input the policy read, cached or not", () => {
    const reader = callers.find((c) => c.label.includes("goals.read"))!;
    const seen: { input: PolicyInput; allow: boolean }[] = [];
    const observed = observeDecisions(authorize, (input, d) =>
      seen.push({ input, allow: d.allow }),
    );
    const ask = (tenant: string) =>
      observed({
        peer: reader.peer,
        principal: reader.principal,
        method: getGoal,
        request: sampleRequest(getGoal, { tenant_id: tenant }),
      }) as Decision;
    expect(ask("acme").allow).toBe(true);
    expect(ask("acme")).toMatchObject({ allow: true, cached: true });
    expect(ask("globex").allow).toBe(false);
    expect(seen.map((s) => [s.allow, s.input.resource.tenant_id])).toEqual([
      [true, "acme"],
      [true, "acme"],
      [false, "globex"],
    ]);
    expect(seen[0]?.input).toMatchObject({
      method: { full: exe("GetGoal") },
      principal: { tenant_id: reader.principal?.tenantId, subject: reader.principal?.subject },
    });
    // The authorizer it was made from tells nobody.
    decide(reader, getGoal, sampleRequest(getGoal, { tenant_id: "acme" }));
    expect(seen).toHaveLength(3);
    // Any other authorizer: the observer gets the input built as the policy would read it.
    const other: Decision[] = [];
    const plain = observeDecisions(
      () => Promise.resolve({ allow: false, reason: "no", principalTrusted: false }),
      (input, d) => {
        expect(input.resource.tenant_id).toBe("acme");
        other.push(d);
      },
    );
    return Promise.resolve(
      plain({
        peer: reader.peer,
        principal: reader.principal,
        method: getGoal,
        request: sampleRequest(getGoal, { tenant_id: "acme" }),
      }),
    ).then(() => expect(other.map((d) => d.reason)).toEqual(["no"]));
  });
});

describe("the dispatch action", () => {
  it("is allowed to the executor, decision-logged with who decided", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentmesh-dispatch-"));
    try {
      const decisionLog = createDecisionLog({
        destination: join(dir, "decisions.log"),
        sampleAllows: 1,
      });
      const check = createPolicyCheck(engine, {
        decisionLog,
        labels: { component: "executor", instance: "executor-1" },
      });
      const ask = (name: string) =>
        check(
          dispatchInput({
            executor: meshPeer(name),
            tenantId: "acme",
            goalId: "g-1",
            goalKind: "summarize",
            capability: "text.summarize",
            stepId: "s",
            attempt: 1,
          }),
        );
      expect(ask("executor")).toMatchObject({ allow: true });
      expect(ask("planner")).toMatchObject({
        allow: false,
        reason:
          "peer spiffe://agentmesh.local/ns/agentmesh/sa/planner may not call agentmesh.v1.ExecutorService/DispatchStep",
      });
      await decisionLog.close();
      const lines = (await readFile(join(dir, "decisions.log"), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as DecisionLogEntry);
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatchObject({
        input: {
          method: { full: "agentmesh.v1.ExecutorService/DispatchStep", kind: "action" },
          resource: { tenant_id: "acme", goal_kind: "summarize", capability: "text.summarize" },
          request: { step_id: "s", capability: "text.summarize", attempt: 1 },
        },
        result: { allow: true },
        labels: { component: "executor", instance: "executor-1" },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
