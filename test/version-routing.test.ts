/**
 * Version constraints on playbook steps (ADR-015), through the in-process mesh
 * on real mTLS, PostgreSQL and JetStream with real agents of two versions of
 * one capability running side by side:
 *
 * - a step constrained to `^2.0.0` never reaches the 1.x agent, however many
 *   goals run, while unconstrained steps still go to either;
 * - with no 2.x agent live, the constrained step waits (the 1.x agent still
 *   never runs it) and succeeds once a 2.x agent registers;
 * - a range that is not semver is refused when the playbook is stored.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { defineAgent } from "../sdk/agent/define-agent.js";
import type { RunningAgent } from "../sdk/agent/run-agent.js";
import { outputJson } from "../sdk/index.js";
import { eventsOf, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

/** Goal id → the versions of the agents that ran a job of it. */
const ranBy = new Map<string, string[]>();

const versioned = (version: string) =>
  defineAgent({
    name: "test",
    version,
    skills: {
      "test.versioned": {
        description: "Says which version ran it.",
        handler: async (_input: unknown, ctx) => {
          ranBy.set(ctx.goalId, [...(ranBy.get(ctx.goalId) ?? []), version]);
          return { version };
        },
      },
    },
  });

describe.skipIf(!pg || !nats)("steps with a version range", () => {
  let mesh: TestMesh;
  let v2: RunningAgent;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [
        { definition: versioned("1.4.0"), instanceId: "v1" },
        { definition: versioned("2.1.0"), instanceId: "v2" },
      ],
    });
    v2 = mesh.agents[1]!;
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    const playbook = (goalKind: string, versionRange: string) => ({
      goalKind,
      description: "One step on test.versioned.",
      strategies: [
        {
          name: "only",
          steps: [
            { stepId: "run", capability: "test.versioned", versionRange, timeout: { seconds: 3n } },
          ],
        },
      ],
    });
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: playbook("needs-v2", "^2.0.0"),
    });
    await planner.putPlaybook({ tenantId: mesh.tenantId, playbook: playbook("any-version", "") });
  });
  afterAll(() => mesh?.stop());

  const run = async (kind: string) => {
    const { goal } = await mesh.executor.submitGoal({ tenantId: mesh.tenantId, kind, input: {} });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 60_000);
    return { goalId: goal!.goalId, events, finished: eventsOf(events, "finished")[0] };
  };

  it("a step constrained to ^2.0.0 never reaches the 1.x agent", async () => {
    const goals = await Promise.all(Array.from({ length: 16 }, () => run("needs-v2")));
    for (const g of goals) {
      expect(g.finished?.status).toBe(GoalStatus.SUCCEEDED);
      expect(outputJson(g.finished?.output)).toEqual({ version: "2.1.0" });
      expect(ranBy.get(g.goalId)).toEqual(["2.1.0"]);
    }
    // Unconstrained steps still run on either version.
    const free = await Promise.all(Array.from({ length: 6 }, () => run("any-version")));
    for (const g of free) expect(g.finished?.status).toBe(GoalStatus.SUCCEEDED);
  });

  it("with no 2.x agent the step waits, never on the 1.x agent, and runs once a 2.x agent is back", async () => {
    await v2.stop("gone");
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "needs-v2",
      input: {},
    });
    const watching = watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 90_000);
    // Two step timeouts: the pinned job waited in a queue the 1.x agent does not read.
    await new Promise((r) => setTimeout(r, 7_000));
    expect(ranBy.get(goal!.goalId)).toBeUndefined();
    const { goal: still } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(still!.status).toBe(GoalStatus.RUNNING);
    await mesh.startAgent(versioned("2.0.5"), "v2-back");
    const events = await watching;
    const finished = eventsOf(events, "finished")[0];
    expect(finished?.status).toBe(GoalStatus.SUCCEEDED);
    expect(outputJson(finished?.output)).toEqual({ version: "2.0.5" });
    expect(ranBy.get(goal!.goalId)).toEqual(["2.0.5"]);
  });

  it("refuses a playbook whose range is not semver, naming the field", async () => {
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    const err = await planner
      .putPlaybook({
        tenantId: mesh.tenantId,
        playbook: {
          goalKind: "bad-range",
          strategies: [
            {
              name: "only",
              steps: [{ stepId: "run", capability: "test.versioned", versionRange: "two" }],
            },
          ],
        },
      })
      .then(
        () => undefined,
        (e: unknown) => MeshError.from(e),
      );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.message).toContain("version_range");
    expect(err?.message).toContain('"two" is not a semver range');
  });
});
