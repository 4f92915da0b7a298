/**
 * End to end, in one process: registry, planner, learning and executor on
 * real mTLS with the compiled policy, PostgreSQL (private schema) and NATS
 * JetStream (private prefix), and the built-in util, text and data agents
 * registered over mTLS. Every goal goes the whole way: SubmitGoal → planner →
 * jobs on the bus → agents → results → reducer → WatchGoal.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDataAgent } from "../agents/data.js";
import { textAgent } from "../agents/text.js";
import { utilAgent } from "../agents/util.js";
import { GoalStatus, StepStatus } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { Code, type MeshError } from "../lib/errors/mesh-error.js";
import type { Client } from "../lib/rpc/client.js";
import { eventsOf, kinds, watchToEnd } from "../lib/testing/goals.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("e2e: goals through the embedded mesh", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [
        { definition: utilAgent },
        { definition: textAgent },
        { definition: createDataAgent() },
      ],
    });
  });
  afterAll(() => mesh?.stop());

  it("runs a multi-step goal with parallel branches (analyze-text)", async () => {
    const text =
      "The mesh plans goals. Agents run steps in parallel. Results merge into one report.";
    const { goal, created } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "analyze-text",
      input: { text, keywords: 3 },
    });
    expect(created).toBe(true);
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status, JSON.stringify(finished.error)).toBe(GoalStatus.SUCCEEDED);
    // Sequences are gapless from 1.
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
    // The three independent steps were dispatched together, before any result; merge after all three.
    const k = kinds(events);
    expect(k.slice(0, 5)).toEqual([
      "submitted",
      "planned",
      "stepDispatched",
      "stepDispatched",
      "stepDispatched",
    ]);
    const dispatched = eventsOf(events, "stepDispatched").map((d) => d.stepId);
    expect(dispatched.slice(0, 3).sort()).toEqual(["keywords", "stats", "summary"]);
    const mergeAt = events.findIndex(
      (e) => e.kind.case === "stepDispatched" && e.kind.value.stepId === "merge",
    );
    const succeededBefore = events
      .slice(0, mergeAt)
      .filter((e) => e.kind.case === "stepSucceeded")
      .map((e) => (e.kind.value as { stepId: string }).stepId);
    expect(succeededBefore.sort()).toEqual(["keywords", "stats", "summary"]);
    const { goal: done } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(done!.status).toBe(GoalStatus.SUCCEEDED);
    expect(done!.steps.map((s) => s.status)).toEqual(Array(4).fill(StepStatus.SUCCEEDED));
    const output = done!.output?.kind;
    expect(output?.case).toBe("structValue");
    expect(JSON.stringify(done!.output)).toContain("words");
  });
});

describe.skipIf(!pg || !nats)("e2e: retries, failures, cancel, sub-goals, policy", () => {
  let mesh: TestMesh;
  let planner: Client<typeof PlannerService>;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [
        { definition: utilAgent },
        { definition: textAgent },
        { definition: createDataAgent() },
      ],
    });
    planner = await mesh.clientAs(PlannerService, "planner", "cli");
    // A tenant playbook: a long sleep, then an echo that must never run when cancelled.
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "sleepy",
        description: "Sleep, then echo.",
        strategies: [
          {
            name: "slow",
            steps: [
              {
                stepId: "sleep",
                capability: "util.sleep",
                // biome-ignore lint/suspicious/noTemplateCurlyInString: a playbook template
                input: { ms: "${input.ms}" },
                timeout: { seconds: 30n },
              },
              {
                stepId: "after",
                capability: "util.echo",
                // biome-ignore lint/suspicious/noTemplateCurlyInString: a playbook template
                input: { slept: "${steps.sleep.output.sleptMs}" },
                dependsOn: ["sleep"],
              },
            ],
          },
        ],
      },
    });
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "unservable",
        description: "Needs a capability nobody offers.",
        strategies: [
          { name: "only", steps: [{ stepId: "x", capability: "test.nobody-offers-this" }] },
        ],
      },
    });
  });
  afterAll(() => mesh?.stop());

  it("retries a step that fails twice, then succeeds (flaky-demo)", async () => {
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "flaky-demo",
      input: { failTimes: 2 },
    });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    expect(eventsOf(events, "finished")[0]!.status).toBe(GoalStatus.SUCCEEDED);
    const failed = eventsOf(events, "stepFailed");
    expect(failed.map((f) => [f.attempt, f.willRetry])).toEqual([
      [1, true],
      [2, true],
    ]);
    expect(eventsOf(events, "stepRetried").map((r) => r.nextAttempt)).toEqual([2, 3]);
    const ok = eventsOf(events, "stepSucceeded")[0]!;
    expect(ok.attempt).toBe(3);
    const { goal: done } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(done!.steps[0]!.attempts).toBe(3);
  });

  it("fails the goal with the step's error when retries run out", async () => {
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "flaky-demo",
      input: { failTimes: 10 },
    });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status).toBe(GoalStatus.FAILED);
    expect(finished.error?.code).toBe("FLAKY");
    expect(finished.error?.message).toContain('step "flaky"');
    expect(eventsOf(events, "stepFailed").map((f) => f.willRetry)).toEqual([
      true,
      true,
      true,
      false,
    ]);
    const { goal: done } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(done!.status).toBe(GoalStatus.FAILED);
    expect(done!.error?.code).toBe("FLAKY");
    expect(done!.steps[0]!.status).toBe(StepStatus.FAILED);
    expect(done!.steps[0]!.attempts).toBe(4);
  });

  it("cancels a goal mid-flight: the running step is signalled, the next never runs", async () => {
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "sleepy",
      input: { ms: 20_000 },
    });
    const goalId = goal!.goalId;
    // Wait until the agent reports that it started the sleep.
    await until(async () => {
      const { goal: g } = await mesh.executor.getGoal({ tenantId: mesh.tenantId, goalId });
      return g!.steps[0]?.status === StepStatus.RUNNING;
    });
    const started = Date.now();
    const { goal: cancelled } = await mesh.executor.cancelGoal({
      tenantId: mesh.tenantId,
      goalId,
      reason: "changed my mind",
    });
    expect(cancelled!.status).toBe(GoalStatus.CANCELLED);
    expect(cancelled!.error?.message).toBe("changed my mind");
    expect(cancelled!.steps.map((s) => s.status)).toEqual([
      StepStatus.CANCELLED,
      StepStatus.CANCELLED,
    ]);
    // The agent stops sleeping long before 20 s (it heard the cancel signal).
    await until(() => mesh.agents.every((a) => a.inFlight === 0));
    expect(Date.now() - started).toBeLessThan(5_000);
    // A late watcher gets the whole history, ending with the cancellation.
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goalId);
    expect(eventsOf(events, "finished")[0]!.status).toBe(GoalStatus.CANCELLED);
    expect(eventsOf(events, "stepDispatched").map((d) => d.stepId)).toEqual(["sleep"]);
    // Cancelling again changes nothing.
    const { goal: again } = await mesh.executor.cancelGoal({ tenantId: mesh.tenantId, goalId });
    expect(again!.status).toBe(GoalStatus.CANCELLED);
  });

  it("runs a sub-goal as its own child goal (research)", async () => {
    const text = "Agents collaborate in a mesh. The executor runs sub-goals as child goals.";
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "research",
      input: { topic: "mesh", text },
    });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status, JSON.stringify(finished.error)).toBe(GoalStatus.SUCCEEDED);
    const { goal: done } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    const summaryStep = done!.steps.find((s) => s.stepId === "summary")!;
    expect(summaryStep.childGoalId).not.toBe("");
    const { goal: child } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: summaryStep.childGoalId,
    });
    expect(child!.kind).toBe("summarize");
    expect(child!.parentGoalId).toBe(goal!.goalId);
    expect(child!.parentStepId).toBe("summary");
    expect(child!.status).toBe(GoalStatus.SUCCEEDED);
    expect(JSON.stringify(done!.output)).toContain("mesh");
  });

  it("accepts a goal no live agent can serve yet and lets it wait (see agent-wait.test.ts)", async () => {
    const { goal, created } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "unservable",
      idempotencyKey: "unservable-1",
    });
    expect(created).toBe(true);
    expect(goal!.status).toBe(GoalStatus.PENDING);
    await mesh.executor.cancelGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
      reason: "done",
    });
  });

  it("returns the same goal for the same idempotency key", async () => {
    const request = {
      tenantId: mesh.tenantId,
      kind: "echo",
      input: { message: "once" },
      idempotencyKey: "order-42",
    };
    const [a, b] = await Promise.all([
      mesh.executor.submitGoal(request),
      mesh.executor.submitGoal(request),
    ]);
    expect(a.goal!.goalId).toBe(b.goal!.goalId);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    await watchToEnd(mesh.executor, mesh.tenantId, a.goal!.goalId);
    const c = await mesh.executor.submitGoal(request);
    expect(c.created).toBe(false);
    expect(c.goal!.goalId).toBe(a.goal!.goalId);
    expect(c.goal!.status).toBe(GoalStatus.SUCCEEDED);
    const { goals } = await mesh.executor.listGoals({ tenantId: mesh.tenantId, kind: "echo" });
    expect(goals.filter((g) => g.idempotencyKey === "order-42")).toHaveLength(1);
  });

  it("rejects bad input with INVALID_ARGUMENT and unknown goals with NOT_FOUND", async () => {
    const bad = await mesh.executor
      .submitGoal({ tenantId: mesh.tenantId, kind: "" })
      .catch((e: unknown) => e as MeshError);
    expect((bad as MeshError).code).toBe(Code.InvalidArgument);
    const badTenant = await mesh.executor
      .submitGoal({ tenantId: "Not A Tenant", kind: "echo" })
      .catch((e: unknown) => e as MeshError);
    expect((badTenant as MeshError).code).toBe(Code.InvalidArgument);
    const missing = await mesh.executor
      .getGoal({ tenantId: mesh.tenantId, goalId: "no-such-goal" })
      .catch((e: unknown) => e as MeshError);
    expect((missing as MeshError).code).toBe(Code.NotFound);
    const past = await mesh.executor
      .submitGoal({ tenantId: mesh.tenantId, kind: "echo", deadline: { seconds: 1n } })
      .catch((e: unknown) => e as MeshError);
    expect((past as MeshError).code).toBe(Code.InvalidArgument);
    // gRPC carries Infinity in a Struct; JSON cannot: refused, and no goal is created.
    const before = (await mesh.executor.listGoals({ tenantId: mesh.tenantId, pageSize: 500 })).goals
      .length;
    const infinite = await mesh.executor
      .submitGoal({ tenantId: mesh.tenantId, kind: "echo", input: { n: [1, Infinity] } })
      .catch((e: unknown) => e as MeshError);
    expect((infinite as MeshError).code).toBe(Code.InvalidArgument);
    expect((infinite as MeshError).message).toMatch(/input\.n\[1\] is not a finite number/);
    const after = (await mesh.executor.listGoals({ tenantId: mesh.tenantId, pageSize: 500 })).goals
      .length;
    expect(after).toBe(before);
  });

  it("enforces the policy on every hop: an identity without a grant is denied", async () => {
    // The learning service may list agents but never submit goals.
    const asLearning = await mesh.clientAs(ExecutorService, "executor", "learning");
    const denied = await asLearning
      .submitGoal({ tenantId: mesh.tenantId, kind: "echo", input: { message: "x" } })
      .catch((e: unknown) => e as MeshError);
    expect((denied as MeshError).code).toBe(Code.PermissionDenied);
    // An agent identity may not ask the planner for plans.
    const asAgent = await mesh.clientAs(PlannerService, "planner", "agent-util");
    const denied2 = await asAgent
      .planGoal({ tenantId: mesh.tenantId, goalId: "g", goalKind: "echo" })
      .catch((e: unknown) => e as MeshError);
    expect((denied2 as MeshError).code).toBe(Code.PermissionDenied);
    // An agent may not register a capability outside its grant.
    const registryAsUtil = await mesh.clientAs(RegistryService, "registry", "agent-util");
    const denied3 = await registryAsUtil
      .registerAgent({
        card: { name: "util", version: "1", skills: [{ capability: "text.summarize" }] },
        instanceId: "rogue",
      })
      .catch((e: unknown) => e as MeshError);
    expect((denied3 as MeshError).code).toBe(Code.PermissionDenied);
    // The executor itself may (the hops a goal takes are granted).
    const ok = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "echo",
      input: { message: "allowed" },
    });
    expect(ok.goal!.status).not.toBe(GoalStatus.FAILED);
  });
});

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
