/**
 * The planner over real mTLS with the committed policy, a real store, a real
 * registry (the planner asks it which capabilities are live) and a real
 * learning service (or none reachable, for the fallback).
 */
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LearningService } from "../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { Code, isMeshError, MeshError } from "../lib/errors/mesh-error.js";
import { type Client, createChannel, createClient, type MeshChannel } from "../lib/rpc/index.js";
import { needPostgres, runId } from "../lib/testing/infra.js";
import { createLearningService, type LearningServiceHandle } from "../services/learning/index.js";
import { createHttpLlmPlanner, createPlannerService } from "../services/planner/index.js";
import { createRegistryService, type RegistryServiceHandle } from "../services/registry/index.js";
import { type Harness, openHarness } from "./control-plane-harness.js";

const pg = await needPostgres();

async function failure(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (err) {
    if (isMeshError(err)) return err;
    throw err;
  }
  return new MeshError(Code.Ok, "no error");
}

const twoWayEcho = (goalKind: string, names: string[]) => ({
  goalKind,
  description: "test playbook",
  strategies: names.map((name) => ({
    name,
    steps: [
      {
        stepId: "echo",
        name: "Echo",
        capability: "util.echo",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a plan template, not a JS one.
        input: { message: "${input.message}" },
      },
    ],
  })),
});

describe.skipIf(!pg)("planner service over mTLS", () => {
  let h: Harness;
  let registry: RegistryServiceHandle;
  let learning: LearningServiceHandle;
  /** Planner whose learning service is unreachable. */
  let offline: Client<typeof PlannerService>;
  /** Planner with a live learning service. */
  let online: Client<typeof PlannerService>;
  let asCli: Client<typeof PlannerService>;
  /** Planner with an OpenAI-compatible LLM planner (a local stand-in endpoint). */
  let withLlm: Client<typeof PlannerService>;
  let llmEndpoint: HttpServer | undefined;
  /** What the stand-in model answers next, and how often it was asked. */
  let llmReply = "";
  let llmCalls = 0;
  let deadChannel: MeshChannel | undefined;
  /** The planner replicas started here (each listens for playbook changes until stopped). */
  const planners: { stop(): Promise<void> }[] = [];
  /** The registry as the util agent's identity. */
  let asUtilAgent: Client<typeof RegistryService>;

  beforeAll(async () => {
    h = await openHarness(pg!.url, [
      "registry",
      "planner",
      "learning",
      "executor",
      "cli",
      "agent-util",
    ]);
    for (const id of ["acme", "globex"]) await h.store.tenants.create({ id, displayName: id });
    registry = createRegistryService({ store: h.store, log: h.log });
    await registry.start();
    const registryServer = await h.serve("registry", RegistryService, registry.impl);
    learning = createLearningService({ store: h.store, log: h.log, trainingSchedule: false });
    const learningServer = await h.serve("learning", LearningService, learning.impl);

    const registryClient = await h.client(RegistryService, registryServer, "registry", "planner");
    // Nothing listens on port 1: every call fails fast, as when learning is down.
    deadChannel = createChannel({
      address: "127.0.0.1:1",
      certs: await h.pki.watch("planner"),
      server: h.pki.id("learning"),
    });
    const plannerOffline = createPlannerService({
      store: h.store,
      log: h.log,
      registry: registryClient,
      learning: createClient(LearningService, deadChannel),
      chooseTimeoutMs: 300,
    });
    const plannerOnline = createPlannerService({
      store: h.store,
      log: h.log,
      registry: registryClient,
      learning: await h.client(LearningService, learningServer, "learning", "planner"),
    });
    // The model endpoint cannot run here; a local server answers in the chat-completions shape.
    llmEndpoint = createHttpServer((req, res) => {
      llmCalls++;
      req.resume().on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ choices: [{ message: { role: "assistant", content: llmReply } }] }),
        );
      });
    });
    await new Promise<void>((r) => llmEndpoint!.listen(0, "127.0.0.1", r));
    const plannerWithLlm = createPlannerService({
      store: h.store,
      log: h.log,
      registry: registryClient,
      llmPlanner: createHttpLlmPlanner({
        endpoint: `http://127.0.0.1:${(llmEndpoint.address() as AddressInfo).port}/v1`,
        model: "stand-in",
        timeoutMs: 2_000,
      }),
    });
    for (const planner of [plannerOffline, plannerOnline, plannerWithLlm]) {
      await planner.start();
      planners.push(planner);
    }
    // Two planner replicas, each its own server with the planner certificate.
    const s1 = await h.serve("planner", PlannerService, plannerOffline.impl);
    const s2 = await h.serve("planner", PlannerService, plannerOnline.impl);
    offline = await h.client(PlannerService, s1, "planner", "executor");
    online = await h.client(PlannerService, s2, "planner", "executor");
    asCli = await h.client(PlannerService, s1, "planner", "cli");
    const s3 = await h.serve("planner", PlannerService, plannerWithLlm.impl);
    withLlm = await h.client(PlannerService, s3, "planner", "executor");

    const agent = await h.client(RegistryService, registryServer, "registry", "agent-util");
    asUtilAgent = agent;
    await agent.registerAgent({
      card: { name: "util-agent", version: "1", skills: [{ capability: "util.echo" }] },
      instanceId: runId("i"),
    });
  });

  afterAll(async () => {
    llmEndpoint?.close();
    deadChannel?.close();
    for (const planner of planners) await planner.stop();
    await registry?.stop();
    await learning?.stop();
    await h?.cleanup();
  });

  it("plans a built-in playbook against the live agents", async () => {
    const { plan } = await offline.planGoal({
      goalId: "g-1",
      tenantId: "acme",
      goalKind: "echo",
      input: { message: "hi" },
    });
    expect(plan?.strategy).toBe("direct");
    expect(plan?.steps.map((s) => s.capability)).toEqual(["util.echo"]);
    expect(plan?.goalId).toBe("g-1");
  });

  it("falls back to the first eligible strategy when learning is down, and asks it when up", async () => {
    await asCli.putPlaybook({
      tenantId: "acme",
      playbook: twoWayEcho("echo2", ["first", "second"]),
    });
    const down = await offline.planGoal({
      goalId: "g-2",
      tenantId: "acme",
      goalKind: "echo2",
      input: { message: "x" },
    });
    expect(down.plan?.strategy).toBe("first");
    expect(down.plan?.rationale).toMatch(/unavailable/);
    const up = await online.planGoal({
      goalId: "g-3",
      tenantId: "acme",
      goalKind: "echo2",
      input: { message: "x" },
    });
    expect(["first", "second"]).toContain(up.plan?.strategy);
    expect(up.plan?.parametersVersion).toBe("v0");
    expect(up.plan?.rationale).not.toMatch(/unavailable/);
  });

  it("fails with FAILED_PRECONDITION naming a capability no live agent offers", async () => {
    const err = await failure(
      offline.planGoal({
        goalId: "g-4",
        tenantId: "acme",
        goalKind: "summarize",
        input: { text: "t" },
      }),
    );
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toContain("text.summarize");
  });

  it("reuses the registry's agents for a moment, but never an answer that found none", async () => {
    const capability = `util.${runId("cache").replace(/[^a-z0-9]/g, "")}`;
    await asCli.putPlaybook({
      tenantId: "acme",
      playbook: {
        goalKind: "cached",
        description: "one step on a capability that comes and goes",
        strategies: [{ name: "only", steps: [{ stepId: "s", name: "S", capability }] }],
      },
    });
    const plan = (goalId: string) =>
      failure(offline.planGoal({ goalId, tenantId: "acme", goalKind: "cached" }));
    expect((await plan("c-1")).code).toBe(Code.FailedPrecondition);
    // The empty answer was not kept: the agent that registers now is found at once.
    const { agent } = await asUtilAgent.registerAgent({
      card: { name: "cache-agent", version: "1", skills: [{ capability }] },
      instanceId: runId("i"),
    });
    expect((await plan("c-2")).code).toBe(Code.Ok);
    // Gone from the registry, but still in the planner's answer for up to a second.
    await asUtilAgent.deregisterAgent({ agentId: agent!.agentId });
    expect((await plan("c-3")).code).toBe(Code.Ok);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await plan("c-4")).code).toBe(Code.FailedPrecondition);
  });

  it("rejects input that does not match the playbook's schema, and unknown kinds", async () => {
    const bad = await failure(
      offline.planGoal({ goalId: "g-5", tenantId: "acme", goalKind: "echo", input: {} }),
    );
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toContain("message");
    const unknown = await failure(
      offline.planGoal({ goalId: "g-6", tenantId: "acme", goalKind: "nope" }),
    );
    expect(unknown.code).toBe(Code.NotFound);
  });

  it("lets a tenant's playbook override the global one, for that tenant only", async () => {
    const put = await asCli.putPlaybook({
      tenantId: "acme",
      playbook: twoWayEcho("echo", ["custom"]),
    });
    expect(put.playbook?.version).toBe(1);
    const acme = await offline.planGoal({
      goalId: "g-7",
      tenantId: "acme",
      goalKind: "echo",
      input: { message: "m" },
    });
    expect(acme.plan?.strategy).toBe("custom");
    const globex = await offline.planGoal({
      goalId: "g-8",
      tenantId: "globex",
      goalKind: "echo",
      input: { message: "m" },
    });
    expect(globex.plan?.strategy).toBe("direct");
    const { playbooks } = await asCli.listPlaybooks({ tenantId: "acme" });
    expect(playbooks.find((p) => p.goalKind === "echo")?.tenantId).toBe("acme");
    await asCli.deletePlaybook({ tenantId: "acme", goalKind: "echo" });
    const back = await offline.planGoal({
      goalId: "g-9",
      tenantId: "acme",
      goalKind: "echo",
      input: { message: "m" },
    });
    expect(back.plan?.strategy).toBe("direct");
    expect((await failure(asCli.deletePlaybook({ tenantId: "acme", goalKind: "echo" }))).code).toBe(
      Code.FailedPrecondition,
    );
    const audit = (await h.store.audit.list({ limit: 1000 })).map(
      (e) => `${e.action} ${e.resource}`,
    );
    expect(audit).toContain("playbook.put playbook/acme/echo");
    expect(audit).toContain("playbook.deleted playbook/acme/echo");
  });

  it("validates a put playbook like any plan", async () => {
    const cyclic = {
      goalKind: "loop",
      strategies: [
        {
          name: "s",
          steps: [
            { stepId: "a", capability: "util.echo", dependsOn: ["b"] },
            { stepId: "b", capability: "util.echo", dependsOn: ["a"] },
          ],
        },
      ],
    };
    expect((await failure(asCli.putPlaybook({ tenantId: "acme", playbook: cyclic }))).code).toBe(
      Code.InvalidArgument,
    );
    // The executor may plan but not write playbooks.
    expect(
      (await failure(offline.putPlaybook({ tenantId: "acme", playbook: twoWayEcho("x", ["a"]) })))
        .code,
    ).toBe(Code.PermissionDenied);
  });

  it("explains a plan with the candidate agents of each step", async () => {
    const res = await online.explainPlan({
      tenantId: "acme",
      goalKind: "echo",
      input: { message: "m" },
    });
    expect(res.plan?.strategy).toBe("direct");
    expect(res.steps[0]?.candidates.map((a) => a.card?.name)).toEqual(["util-agent"]);
  });

  it("plans a kind without a playbook through the LLM planner only when one is configured", async () => {
    const brief = {
      goalId: "g-llm",
      tenantId: "acme",
      goalKind: "brief",
      input: { message: "hi" },
    };
    // Off by default: the planner without one knows no such kind, and nothing is asked.
    expect((await failure(offline.planGoal(brief))).code).toBe(Code.NotFound);
    expect(llmCalls).toBe(0);

    llmReply = JSON.stringify({
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a plan template, not a JS one.
      steps: [{ id: "say", capability: "util.echo", input: { message: "${input.message}" } }],
    });
    const { plan } = await withLlm.planGoal(brief);
    expect(plan?.strategy).toBe("llm");
    expect(plan?.steps.map((s) => s.capability)).toEqual(["util.echo"]);
    expect(plan?.steps[0]?.input).toEqual({ message: "hi" });
    expect(llmCalls).toBe(1);

    // A kind with a playbook never reaches the model.
    await withLlm.planGoal({ ...brief, goalKind: "echo" });
    expect(llmCalls).toBe(1);

    // The model's plan is validated like any other: no live agent offers shell.exec.
    llmReply = JSON.stringify({ steps: [{ id: "x", capability: "shell.exec" }] });
    expect((await failure(withLlm.planGoal(brief))).code).toBe(Code.InvalidArgument);
    // A tenant switched off the LLM planner (AdminService UpdateTenant) is not planned by it.
    await h.store.flags.set({ key: "planner.llm", value: "false", tenantId: "acme" });
    const calls = llmCalls;
    expect((await failure(withLlm.planGoal(brief))).code).toBe(Code.NotFound);
    expect(llmCalls).toBe(calls);
    await h.store.flags.delete({ key: "planner.llm", tenantId: "acme" });
  });
});
