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
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { eventsOf, kinds, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

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
