/**
 * The engine's group commit of results, through the whole mesh (real mTLS,
 * PostgreSQL, JetStream and the util agent): goals whose results arrive
 * together finish exactly as they would one by one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../../agents/util.js";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { needNats, needPostgres } from "../../lib/testing/infra.js";
import { kinds, watchToEnd } from "../../test/support/goals.js";
import { startTestMesh, type TestMesh } from "../../test/support/mesh.js";
import type { GoalEngine } from "./goal-engine.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("goal engine: results applied in group commits", () => {
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

  it("finishes every goal once, with gapless events, when results share a transaction", async () => {
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
    // Sixty results arriving within a moment: some were committed together.
    expect(engine.stats.resultBatches).toBeGreaterThan(before.resultBatches);
  });
});
