/**
 * The executor plans a goal whose kind has a playbook itself, with the
 * planner's code (ADR-017), through the in-process mesh on real mTLS,
 * PostgreSQL and JetStream:
 *
 * - a playbook goal costs no PlanGoal call, and its plan is the one PlanGoal
 *   gives for the same goal (strategy, rationale, steps);
 * - refusals are PlanGoal's, code and message;
 * - a PutPlaybook or DeletePlaybook answered is what the next goal plans with;
 * - `capability.<name>` kinds are planned the same way;
 * - `AGENTMESH_EXECUTOR_REMOTE_PLANNING` sends every goal to PlanGoal again.
 */
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { type Plan, PlannerService, StepSchema } from "../gen/agentmesh/v1/planner_pb.js";
import { MeshError } from "../lib/errors/mesh-error.js";
import type { Client } from "../lib/rpc/client.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { eventsOf, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

/** PlanGoal calls the planner has answered so far. */
async function planGoalCalls(mesh: TestMesh): Promise<number> {
  const metric = mesh.runtime.metrics.registry.getSingleMetric("agentmesh_rpc_requests_total");
  const { values } = await metric!.get();
  return values
    .filter((v) => v.labels.side === "server" && v.labels.method === "PlanGoal")
    .reduce((sum, v) => sum + v.value, 0);
}

/** What a plan says apart from its ids and time. */
function content(plan: Plan | undefined) {
  return {
    goalKind: plan?.goalKind,
    strategy: plan?.strategy,
    rationale: plan?.rationale,
    outputStep: plan?.outputStep,
    parametersVersion: plan?.parametersVersion,
    collaborative: plan?.collaborative,
    steps: plan?.steps.map((s) => toJson(StepSchema, s)),
  };
}

async function submitAndPlan(
  mesh: TestMesh,
  kind: string,
  input: JsonObject,
  strategy = "",
): Promise<Plan | undefined> {
  const { goal } = await mesh.executor.submitGoal({
    tenantId: mesh.tenantId,
    kind,
    input,
    strategy,
  });
  const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 30_000);
  expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
  return eventsOf(events, "planned")[0]?.plan;
}

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => {
      const err = MeshError.from(e);
      return { code: err.codeName, message: err.message, details: err.details };
    },
  );

/** A tenant's own `echo`: one util.echo step under a strategy of the given name. */
const ownEcho = (strategy: string) => ({
  goalKind: "echo",
  description: "The tenant's own echo.",
  strategies: [
    {
      name: strategy,
      steps: [
        {
          stepId: "say",
          capability: "util.echo",
          input: { said: `${strategy} \${input.message}` },
        },
      ],
    },
  ],
});

describe.skipIf(!pg || !nats)("the executor plans playbook goals itself", () => {
  let mesh: TestMesh;
  let planner: Client<typeof PlannerService>;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: utilAgent }],
    });
    planner = await mesh.clientAs(PlannerService, "planner", "executor");
  });
  afterAll(() => mesh?.stop());

  it("plans without a PlanGoal call, the plan PlanGoal gives", async () => {
    const before = await planGoalCalls(mesh);
    const input = { message: "in process" };
    const plan = await submitAndPlan(mesh, "echo", input);
    const requested = await submitAndPlan(mesh, "echo", input, "direct");
    expect(await planGoalCalls(mesh)).toBe(before);
    const remote = await planner.planGoal({
      goalId: "g-1",
      tenantId: mesh.tenantId,
      goalKind: "echo",
      input,
    });
    expect(content(plan)).toEqual(content(remote.plan));
    expect(plan?.rationale).toBe('"direct" is the only strategy the live agents can run');
    const remoteRequested = await planner.planGoal({
      goalId: "g-2",
      tenantId: mesh.tenantId,
      goalKind: "echo",
      input,
      strategy: "direct",
    });
    expect(content(requested)).toEqual(content(remoteRequested.plan));
  });

  it("refuses as PlanGoal refuses, storing nothing", async () => {
    const cases: { kind: string; input: JsonObject; strategy?: string }[] = [
      { kind: "no-such-kind", input: {} },
      { kind: "echo", input: {} },
      { kind: "echo", input: { message: 3 } },
      { kind: "echo", input: { message: "x" }, strategy: "nope" },
    ];
    for (const c of cases) {
      const submitted = await refusal(mesh.executor.submitGoal({ tenantId: mesh.tenantId, ...c }));
      const planned = await refusal(
        planner.planGoal({
          goalId: "g",
          tenantId: mesh.tenantId,
          goalKind: c.kind,
          input: c.input,
          strategy: c.strategy ?? "",
        }),
      );
      expect(submitted).toBeDefined();
      expect(submitted).toEqual(planned);
    }
    const { goals } = await mesh.executor.listGoals({
      tenantId: mesh.tenantId,
      kind: "no-such-kind",
    });
    expect(goals).toEqual([]);
  });

  it("plans with a playbook as soon as PutPlaybook or DeletePlaybook answers", async () => {
    const admin = await mesh.clientAs(PlannerService, "planner", "cli");
    for (let round = 0; round < 3; round++) {
      for (const strategy of [`own-${round}`, `again-${round}`]) {
        await admin.putPlaybook({ tenantId: mesh.tenantId, playbook: ownEcho(strategy) });
        const plan = await submitAndPlan(mesh, "echo", { message: "m" });
        expect(plan?.strategy).toBe(strategy);
        expect(plan?.steps[0]?.input).toEqual({ said: `${strategy} m` });
      }
      await admin.deletePlaybook({ tenantId: mesh.tenantId, goalKind: "echo" });
      expect((await submitAndPlan(mesh, "echo", { message: "m" }))?.strategy).toBe("direct");
    }
    // A kind that first had no playbook at all (NOT_FOUND) plans once one is put.
    const kind = "new-kind";
    expect((await refusal(mesh.executor.submitGoal({ tenantId: mesh.tenantId, kind })))?.code).toBe(
      "NOT_FOUND",
    );
    await admin.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: { ...ownEcho("fresh"), goalKind: kind },
    });
    expect((await submitAndPlan(mesh, kind, { message: "m" }))?.strategy).toBe("fresh");
  });

  it("plans capability goals too", async () => {
    // The caller's strings stay literal (escaped), in process as in PlanGoal.
    const literal = ["$", "{input.text}"].join("");
    const before = await planGoalCalls(mesh);
    const plan = await submitAndPlan(mesh, "capability.util.echo", { text: literal });
    expect(await planGoalCalls(mesh)).toBe(before);
    const remote = await planner.planGoal({
      goalId: "g-3",
      tenantId: mesh.tenantId,
      goalKind: "capability.util.echo",
      input: { text: literal },
    });
    expect(content(plan)).toEqual(content(remote.plan));
  });
});

describe.skipIf(!pg || !nats)("AGENTMESH_EXECUTOR_REMOTE_PLANNING", () => {
  let mesh: TestMesh;
  const saved = process.env.AGENTMESH_EXECUTOR_REMOTE_PLANNING;
  beforeAll(async () => {
    process.env.AGENTMESH_EXECUTOR_REMOTE_PLANNING = "true";
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: utilAgent }],
    });
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.AGENTMESH_EXECUTOR_REMOTE_PLANNING;
    else process.env.AGENTMESH_EXECUTOR_REMOTE_PLANNING = saved;
    await mesh?.stop();
  });

  it("plans every goal through PlanGoal", async () => {
    const before = await planGoalCalls(mesh);
    const plan = await submitAndPlan(mesh, "echo", { message: "remote" });
    expect(plan?.strategy).toBe("direct");
    expect(await planGoalCalls(mesh)).toBe(before + 1);
  });
});
