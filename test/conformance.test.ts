/**
 * Conformance examples (ADR-015), through the in-process mesh on real mTLS,
 * PostgreSQL and JetStream: an agent version whose card declares examples
 * registers in probation, runs them, and becomes LIVE only when the registry
 * finds every output of the expected shape. A version that fails one stays in
 * probation: FindAgents does not offer it, and no goal's job reaches it, even
 * with the capability's shared queue busy and a step constrained to its
 * version waiting.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { AgentState, RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { defineAgent } from "../sdk/agent/define-agent.js";
import { outputJson } from "../sdk/index.js";
import { eventsOf, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

/** Live jobs (not conformance examples) each version ran. */
const liveRuns = new Map<string, number>();

const upper = (version: string, handler: (text: string) => unknown) =>
  defineAgent({
    name: "test",
    version,
    skills: {
      "test.upper": {
        description: "Upper-cases a text.",
        inputSchema: { type: "object", required: ["text"] },
        handler: async ({ text }: { text: string }, ctx) => {
          if (ctx.goalId !== "conformance") liveRuns.set(version, (liveRuns.get(version) ?? 0) + 1);
          return handler(text);
        },
      },
    },
    conformance: [
      {
        capability: "test.upper",
        description: "upper-cases",
        input: { text: "hi" },
        expectedOutputSchema: {
          type: "object",
          required: ["upper"],
          properties: { upper: { type: "string", const: "HI" } },
        },
      },
    ],
  });

describe.skipIf(!pg || !nats)("conformance examples before live traffic", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [
        { definition: upper("3.0.0", (t) => ({ upper: t.toUpperCase() })), instanceId: "good" },
        // A regression: the new version answers in another shape.
        { definition: upper("3.1.0", (t) => ({ lower: t.toLowerCase() })), instanceId: "bad" },
      ],
    });
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    const playbook = (goalKind: string, versionRange: string) => ({
      goalKind,
      strategies: [
        {
          name: "only",
          steps: [
            {
              stepId: "up",
              capability: "test.upper",
              // biome-ignore lint/suspicious/noTemplateCurlyInString: a playbook template
              input: { text: "${input.text}" },
              versionRange,
            },
          ],
        },
      ],
    });
    await planner.putPlaybook({ tenantId: mesh.tenantId, playbook: playbook("upper", "") });
    await planner.putPlaybook({ tenantId: mesh.tenantId, playbook: playbook("upper-31", "3.1.x") });
  });
  afterAll(() => mesh?.stop());

  it("the passing version is LIVE and found; the failing one stays in probation, not found", async () => {
    const registry = await mesh.clientAs(RegistryService, "registry", "cli");
    const [good, bad] = mesh.agents;
    const state = async (agentId: string) => (await registry.getAgent({ agentId })).agent?.state;
    expect(await state(good!.agentId)).toBe(AgentState.LIVE);
    expect(await state(bad!.agentId)).toBe(AgentState.PROBATION);
    const { agents } = await registry.findAgents({ capability: "test.upper", limit: 10 });
    expect(agents.map((a) => a.card?.version)).toEqual(["3.0.0"]);
    // Listed (an operator sees why it takes nothing), with its state.
    const listed = await registry.listAgents({ capability: "test.upper" });
    expect(listed.agents.map((a) => [a.card?.version, a.state]).sort()).toEqual([
      ["3.0.0", AgentState.LIVE],
      ["3.1.0", AgentState.PROBATION],
    ]);
  });

  it("a failing conformance example keeps the agent out of dispatch", async () => {
    const goals = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const { goal } = await mesh.executor.submitGoal({
          tenantId: mesh.tenantId,
          kind: "upper",
          input: { text: `t${i}` },
        });
        return watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 60_000);
      }),
    );
    for (const [i, events] of goals.entries()) {
      const finished = eventsOf(events, "finished")[0];
      expect(finished?.status).toBe(GoalStatus.SUCCEEDED);
      expect(outputJson(finished?.output)).toEqual({ upper: `T${i}` });
    }
    expect(liveRuns.get("3.0.0")).toBe(12);
    // A step constrained to the failing version waits rather than reach it.
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "upper-31",
      input: { text: "x" },
    });
    await new Promise((r) => setTimeout(r, 4_000));
    const { goal: still } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(still!.status).not.toBe(GoalStatus.SUCCEEDED);
    expect(liveRuns.get("3.1.0")).toBeUndefined();
    await mesh.executor.cancelGoal({ tenantId: mesh.tenantId, goalId: goal!.goalId });
  });
});
