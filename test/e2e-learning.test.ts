/**
 * The mesh gets better with use, end to end: a goal kind with a reliable
 * strategy (util.echo) and a flaky one (util.flaky failing half the time, one
 * attempt), submitted again and again through the real executor, planner and
 * learning service. Outcomes flow back over the bus; Thompson sampling must
 * steer new goals to the reliable strategy within 500 goals.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { eventsOf, watchToEnd } from "../lib/testing/goals.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

const once = { max_attempts: 1 };

describe.skipIf(!pg || !nats)("e2e: learning steers goals to the reliable strategy", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: utilAgent }],
    });
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "pick-one",
        description: "Two ways to the same answer; one of them fails half the time.",
        strategies: [
          // The flaky one first: it is also the planner's fallback, so learning must earn the win.
          {
            name: "flaky",
            steps: [
              {
                stepId: "call",
                capability: "util.flaky",
                input: { failRate: 0.5 },
                retry: { maxAttempts: once.max_attempts },
              },
            ],
          },
          {
            name: "reliable",
            steps: [
              {
                stepId: "call",
                capability: "util.echo",
                input: { ok: true },
                retry: { maxAttempts: once.max_attempts },
              },
            ],
          },
        ],
      },
    });
  });
  afterAll(() => mesh?.stop());

  it("reaches ≥ 90% success on new goals within 500 goals", { timeout: 240_000 }, async () => {
    const outcomes: { strategy: string; ok: boolean }[] = [];
    const batch = 10;
    let recentRate = 0;
    for (let submitted = 0; submitted < 500; submitted += batch) {
      const results = await Promise.all(
        Array.from({ length: batch }, async () => {
          const { goal } = await mesh.executor.submitGoal({
            tenantId: mesh.tenantId,
            kind: "pick-one",
            input: { text: "choose well" },
          });
          const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
          const finished = eventsOf(events, "finished")[0]!;
          return { strategy: goal!.strategy, ok: finished.status === GoalStatus.SUCCEEDED };
        }),
      );
      outcomes.push(...results);
      const recent = outcomes.slice(-50);
      recentRate = recent.filter((o) => o.ok).length / recent.length;
      if (outcomes.length >= 100 && recentRate >= 0.9) break;
    }
    const chosen = (name: string, from: typeof outcomes) =>
      from.filter((o) => o.strategy === name).length;
    console.log(
      `learning e2e: ${outcomes.length} goals; last 50: ${Math.round(recentRate * 100)}% succeeded, ` +
        `reliable chosen ${chosen("reliable", outcomes.slice(-50))}/50; ` +
        `first 50: reliable ${chosen("reliable", outcomes.slice(0, 50))}/50`,
    );
    expect(recentRate).toBeGreaterThanOrEqual(0.9);
    expect(outcomes.length).toBeLessThanOrEqual(500);
    // The reliable strategy won the recent goals; the flaky one really failed when tried.
    expect(chosen("reliable", outcomes.slice(-50))).toBeGreaterThanOrEqual(40);
    const flaky = outcomes.filter((o) => o.strategy === "flaky");
    expect(flaky.some((o) => !o.ok)).toBe(true);
  });
});
