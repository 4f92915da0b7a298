/**
 * The engine's results, through the whole mesh (real mTLS, PostgreSQL,
 * JetStream and the util agent): goals whose results arrive together finish
 * exactly as they would one by one, and a result applied from a goal that is
 * behind the store is decided on a fresh load.
 */
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../../agents/util.js";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { StepResultSchema, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { kinds, watchToEnd } from "../../lib/testing/goals.js";
import { needNats, needPostgres } from "../../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../../lib/testing/mesh.js";
import type { GoalEngine } from "./goal-engine.js";
import { goalStateOf, loadGoal } from "./goal-store.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("goal engine: results", () => {
  let mesh: TestMesh;
  let engine: GoalEngine;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: utilAgent }],
    });
    const executor = mesh.components.find((c) => c.name === "executor")!;
    engine = (executor.handle as unknown as { engine: GoalEngine }).engine;
  });
  afterAll(() => mesh?.stop());

  it("finishes every goal once, with gapless events, when results arrive together", async () => {
    const before = { ...engine.stats };
    const n = 60;
    const ids = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const { goal } = await mesh.executor.submitGoal({
          tenantId: mesh.tenantId,
          kind: "echo",
          input: { message: `m${i}` },
        });
        return goal!.goalId;
      }),
    );
    for (const id of ids) {
      const events = await watchToEnd(mesh.executor, mesh.tenantId, id);
      expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
      expect(kinds(events).filter((k) => k === "finished")).toHaveLength(1);
      const { goal } = await mesh.executor.getGoal({ tenantId: mesh.tenantId, goalId: id });
      expect(goal!.status).toBe(GoalStatus.SUCCEEDED);
    }
    expect(engine.stats.resultsApplied - before.resultsApplied).toBeGreaterThanOrEqual(n);
    // Sixty results arriving within a moment: some were applied together.
    expect(engine.stats.resultBatches).toBeGreaterThan(before.resultBatches);
    // ...and their transitions saved in shared statements, each goal under its own lock.
    expect(engine.stats.transitionBatches).toBeGreaterThan(before.transitionBatches);
  });

  it("decides on a fresh load when the goal it starts from is behind the store", async () => {
    // One long util.sleep step: the goal waits for its result while the test plays it.
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "sleepy",
        description: "one long sleep",
        strategies: [
          {
            name: "only",
            steps: [
              { stepId: "nap", name: "Nap", capability: "util.sleep", input: { ms: 30_000 } },
            ],
          },
        ],
      },
    });
    const { goal } = await mesh.executor.submitGoal({ tenantId: mesh.tenantId, kind: "sleepy" });
    const id = goal!.goalId;
    const tenant = mesh.runtime.store.tenant(mesh.tenantId);
    const planned = await loadGoal(tenant, id);
    const attempt = planned.state.steps.nap!.attempts[0]!;
    const result = create(StepResultSchema, {
      attemptId: attempt.attemptId,
      goalId: id,
      tenantId: mesh.tenantId,
      stepId: "nap",
      attempt: 1,
      agentId: "agent-x",
      status: StepResultStatus.SUCCEEDED,
      output: { kind: { case: "structValue", value: { fields: {} } } },
    });
    const inputs = (_s: unknown, now: number) => [{ type: "result" as const, result, at: now }];
    // Behind by the plan: the stale state cannot place the result; the fresh load applies it.
    const unplanned = { ...planned, state: goalStateOf(planned.goal), plan: undefined };
    expect((await engine.apply(mesh.tenantId, id, inputs, unplanned)).changed).toBe(true);
    expect((await tenant.goals.get(id)).status).toBe("SUCCEEDED");
    // Behind by a transition: the write is refused (the goal moved on), the fresh load says "done".
    const done = await tenant.goals.get(id);
    const [finished] = await tenant.plans.attempts(planned.state.plan!.planId, "nap");
    expect(finished?.outcome).toBe("SUCCEEDED");
    expect((await engine.apply(mesh.tenantId, id, inputs, planned)).changed).toBe(false);
    expect(await tenant.goals.get(id)).toEqual(done);
    expect(await tenant.plans.attempts(planned.state.plan!.planId, "nap")).toEqual([finished]);
    const events = await tenant.events.list(id);
    expect(events.map((e) => e.sequence)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === "finished")).toHaveLength(1);
  });
});
