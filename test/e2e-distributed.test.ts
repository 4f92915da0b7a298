/**
 * End to end with several executors: arbitration over three agents where one
 * disagrees, two executor replicas sharing the load, and `kill -9` of an
 * executor process mid-goal followed by a restart that completes the goal
 * without repeating a completed step. Real PostgreSQL, NATS JetStream, mTLS
 * and the compiled policy throughout.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { textAgent } from "../agents/text.js";
import { utilAgent } from "../agents/util.js";
import { GoalStatus, StepStatus } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { createLazyClient } from "../lib/mesh/lazy-client.js";
import { eventsOf, watchToEnd } from "../lib/testing/goals.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { killAllChildren, spawnComponent } from "../lib/testing/processes.js";
import { defineAgent } from "../sdk/agent/define-agent.js";
import type { GoalEngine } from "../services/executor/goal-engine.js";

const pg = await needPostgres();
const nats = await needNats();

/**
 * A text.summarize agent whose third replica always answers differently, and
 * first: the executor decides as soon as a majority agrees, so a dissent that
 * arrives after the majority is never looked at.
 */
const committeeMember = defineAgent({
  name: "text",
  version: "1.0.0",
  description: "Committee member for arbitration tests.",
  skills: {
    "text.summarize": {
      description: "Agrees, except as replica 2.",
      handler: async (_input: Record<string, unknown>, ctx) => {
        const replica = Number(ctx.attemptId.split(":").pop());
        await new Promise((r) => setTimeout(r, replica === 2 ? 0 : 300));
        return { summary: replica === 2 ? "A dissenting summary." : "The agreed summary." };
      },
    },
  },
});

describe.skipIf(!pg || !nats)("e2e: arbitration", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [
        { definition: committeeMember, instanceId: "member-a" },
        { definition: committeeMember, instanceId: "member-b" },
        { definition: committeeMember, instanceId: "member-c" },
      ],
    });
  });
  afterAll(() => mesh?.stop());

  it("takes the majority of three replicas and records the disagreement", async () => {
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "summarize",
      input: { text: "Three agents summarize this. One disagrees.", sentences: 1 },
      strategy: "committee",
    });
    expect(goal!.strategy).toBe("committee");
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    expect(eventsOf(events, "stepDispatched").map((d) => d.replica)).toEqual([0, 1, 2]);
    const decided = eventsOf(events, "stepSucceeded")[0]!;
    expect(decided.disagreement).toBe(true);
    expect(decided.agentIds).toHaveLength(2);
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status).toBe(GoalStatus.SUCCEEDED);
    expect(JSON.stringify(finished.output)).toContain("The agreed summary.");
  });
});

describe.skipIf(!pg || !nats)("e2e: executor replicas", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      executors: 2,
      agents: [{ definition: utilAgent }, { definition: textAgent }],
    });
  });
  afterAll(() => mesh?.stop());

  it("shares goals and results between two replicas", async () => {
    const executors = mesh.components.filter((c) => c.name === "executor");
    expect(executors).toHaveLength(2);
    const clients = await Promise.all(
      executors.map(async (e) =>
        createLazyClient(
          ExecutorService,
          () => ({ address: e.address, spiffeId: e.spiffeId }),
          await mesh.runtime.certs("cli"),
        ),
      ),
    );
    const goals = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        clients[i % 2]!.client.submitGoal({
          tenantId: mesh.tenantId,
          kind: i % 3 === 0 ? "flaky-demo" : "echo",
          input: i % 3 === 0 ? { failTimes: 1 } : { message: `m${i}` },
        }),
      ),
    );
    // Watch each goal through the other replica than the one that accepted it.
    const finals = await Promise.all(
      goals.map((g, i) => watchToEnd(clients[(i + 1) % 2]!.client, mesh.tenantId, g.goal!.goalId)),
    );
    for (const events of finals) {
      expect(eventsOf(events, "finished")[0]!.status).toBe(GoalStatus.SUCCEEDED);
    }
    const engines = executors.map((e) => (e.handle as unknown as { engine: GoalEngine }).engine);
    for (const engine of engines) expect(engine.stats.resultsApplied).toBeGreaterThan(0);
    for (const c of clients) c.close();
  });
});

describe.skipIf(!pg || !nats)("e2e: kill -9 of an executor process", () => {
  let mesh: TestMesh;
  /** How often each (goal, step) ran in an agent. */
  const runs = new Map<string, number>();
  const counted = defineAgent({
    name: "test",
    version: "1.0.0",
    description: "Counts how often each step runs.",
    skills: {
      "test.work": {
        description: "Sleeps `ms`, counting runs per step.",
        handler: async (input: { ms?: number }, ctx) => {
          const key = `${ctx.goalId}/${ctx.stepId}`;
          runs.set(key, (runs.get(key) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, input.ms ?? 0));
          return { step: ctx.stepId };
        },
      },
    },
  });
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      components: ["registry", "learning", "planner"],
      agents: [{ definition: counted }],
    });
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "three-steps",
        description: "a → b → c, each a little slow.",
        strategies: [
          {
            name: "chain",
            steps: [
              { stepId: "a", capability: "test.work", input: { ms: 1500 } },
              { stepId: "b", capability: "test.work", input: { ms: 1000 }, dependsOn: ["a"] },
              { stepId: "c", capability: "test.work", input: { ms: 10 }, dependsOn: ["b"] },
            ],
          },
        ],
      },
    });
  });
  afterEach(() => killAllChildren());
  afterAll(() => mesh?.stop());

  it("completes the goal after a restart, each step done once", async () => {
    const env = { ...mesh.childEnv(), AGENTMESH_EXECUTOR_PORT: "0" };
    const first = await spawnComponent("executor", env);
    const certs = await mesh.runtime.certs("cli");
    const at = (address: string) =>
      createLazyClient(ExecutorService, () => ({ address, spiffeId: first.spiffeId }), certs);
    const one = at(first.address);
    const { goal } = await one.client.submitGoal({
      tenantId: mesh.tenantId,
      kind: "three-steps",
    });
    const goalId = goal!.goalId;
    // Kill it while step a runs in the agent.
    for (;;) {
      const { goal: g } = await one.client.getGoal({ tenantId: mesh.tenantId, goalId });
      if (g!.steps[0]?.status === StepStatus.RUNNING) break;
      await new Promise((r) => setTimeout(r, 30));
    }
    await first.kill("SIGKILL");
    one.close();
    // Step a finishes while no executor runs; its result waits on the bus.
    const second = await spawnComponent("executor", env);
    const two = at(second.address);
    const events = await watchToEnd(two.client, mesh.tenantId, goalId, 25_000);
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status, JSON.stringify(finished.error)).toBe(GoalStatus.SUCCEEDED);
    const { goal: done } = await two.client.getGoal({ tenantId: mesh.tenantId, goalId });
    expect(done!.steps.map((s) => [s.stepId, s.status, s.attempts])).toEqual([
      ["a", StepStatus.SUCCEEDED, 1],
      ["b", StepStatus.SUCCEEDED, 1],
      ["c", StepStatus.SUCCEEDED, 1],
    ]);
    expect(eventsOf(events, "stepDispatched").map((d) => d.stepId)).toEqual(["a", "b", "c"]);
    expect([...runs.entries()].filter(([k]) => k.startsWith(goalId)).map(([, n]) => n)).toEqual([
      1, 1, 1,
    ]);
    two.close();
    await second.kill("SIGTERM");
  });
});
