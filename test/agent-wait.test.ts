/**
 * A passing cause is not a failure (issue 15), through the in-process mesh
 * on real mTLS, PostgreSQL and JetStream with the shipped defaults:
 *
 * - a goal needing a capability no live agent offers is accepted, says it
 *   waits (a `waitingForAgents` event), and runs once an agent offering it
 *   registers;
 * - a refusal (unknown kind, invalid input) stores nothing, and neither does
 *   a passing cause before acceptance (the planner away for a kind without a
 *   playbook: UNAVAILABLE), so the same request with the same idempotency key
 *   goes through later; a playbook's kind is planned in the executor, planner
 *   or not (ADR-017);
 * - the wait is bounded (`AGENTMESH_EXECUTOR_AGENT_WAIT_MS`, the subject of
 *   its own mesh): then the goal fails with the planner's reason.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats } from "../lib/bus/jetstream-bus.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { needNats, needPostgres, runId } from "../lib/testing/infra.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { defineAgent } from "../sdk/agent/define-agent.js";
import { eventsOf, kinds, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

/** A tenant playbook with one step on `capability`. */
async function putOneStepPlaybook(mesh: TestMesh, kind: string, capability: string) {
  const planner = await mesh.clientAs(PlannerService, "planner", "cli");
  await planner.putPlaybook({
    tenantId: mesh.tenantId,
    playbook: {
      goalKind: kind,
      description: "One step on a capability that may have no agent.",
      strategies: [{ name: "only", steps: [{ stepId: "x", capability }] }],
    },
  });
}

async function goalsWithKey(mesh: TestMesh, kind: string, key: string) {
  const { goals } = await mesh.executor.listGoals({ tenantId: mesh.tenantId, kind });
  return goals.filter((g) => g.idempotencyKey === key);
}

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => Code.Ok,
    (e: unknown) => MeshError.from(e).code,
  );

describe.skipIf(!pg || !nats)("agents away: goals wait, refusals store nothing", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: utilAgent }],
    });
    await putOneStepPlaybook(mesh, "late", "test.late");
  });
  afterAll(() => mesh?.stop());

  it("a goal waits for its agent and runs once one registers", async () => {
    const { goal, created } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "late",
      input: { n: 1 },
      idempotencyKey: runId("late"),
    });
    expect(created).toBe(true);
    expect(goal!.status).toBe(GoalStatus.PENDING);
    const watching = watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 60_000);
    // Well past the planner's first answer and a few ticker re-plans.
    await new Promise((r) => setTimeout(r, 7_000));
    const { goal: still } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(still!.status).toBe(GoalStatus.PENDING);

    await mesh.startAgent(
      defineAgent({
        name: "test",
        version: "1.0.0",
        skills: { "test.late": { description: "Comes late", handler: async (i) => ({ got: i }) } },
      }),
    );
    const events = await watching;
    expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
    // One waiting event however many times the ticker re-planned, then the normal course.
    const waiting = eventsOf(events, "waitingForAgents");
    expect(waiting).toHaveLength(1);
    expect(waiting[0]!.capabilities).toEqual(["test.late"]);
    expect(waiting[0]!.reason?.code).toBe("FAILED_PRECONDITION");
    expect(kinds(events).slice(0, 3)).toEqual(["submitted", "waitingForAgents", "planned"]);
    expect(events.map((e) => Number(e.sequence))).toEqual(events.map((_, i) => i + 1));
  });

  it("a job no agent took waits for an agent, and the wait costs the step no attempt", async () => {
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "relay",
        description: "A sleep, then a step whose agent is gone by the time it is dispatched.",
        strategies: [
          {
            name: "only",
            steps: [
              { stepId: "first", capability: "util.sleep", input: { ms: 1_500 } },
              {
                stepId: "second",
                capability: "test.relay",
                dependsOn: ["first"],
                timeout: { seconds: 2n },
                // One attempt: losing it to the agents' absence would fail the goal.
                retry: { maxAttempts: 1 },
              },
            ],
          },
        ],
      },
    });
    const relay = defineAgent({
      name: "test",
      version: "1.0.0",
      skills: { "test.relay": { description: "Relays", handler: async () => ({ ok: true }) } },
    });
    const first = await mesh.startAgent(relay, runId("relay-a"));
    const { goal } = await mesh.executor.submitGoal({ tenantId: mesh.tenantId, kind: "relay" });
    await first.stop("gone before its step");
    const watching = watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 60_000);
    // Three attempts of 2 s would have failed the goal by now.
    await new Promise((r) => setTimeout(r, 12_000));
    const { goal: still } = await mesh.executor.getGoal({
      tenantId: mesh.tenantId,
      goalId: goal!.goalId,
    });
    expect(still!.status).toBe(GoalStatus.RUNNING);
    await mesh.startAgent(relay, runId("relay-b"));
    const events = await watching;
    expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
    const waiting = eventsOf(events, "waitingForAgents");
    expect(waiting).toHaveLength(1);
    expect(waiting[0]!.capabilities).toEqual(["test.relay"]);
    // The attempt no agent could take is given up as NOT_TAKEN, not charged to the
    // step's single attempt: the next one ran.
    const failed = eventsOf(events, "stepFailed").filter((f) => f.stepId === "second");
    expect(failed.map((f) => [f.attempt, f.error?.code, f.willRetry])).toEqual([
      [1, "NOT_TAKEN", true],
    ]);
    expect(eventsOf(events, "stepSucceeded").find((x) => x.stepId === "second")?.attempt).toBe(2);
  });

  it("a job lost while its agents were away costs the step no attempt either", async () => {
    // The ticker, not an agent's refusal, gives the attempt up once an agent is back.
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "relay-lost",
        description: "A sleep, then a step whose job is lost while no agent is live.",
        strategies: [
          {
            name: "only",
            steps: [
              { stepId: "first", capability: "util.sleep", input: { ms: 1_500 } },
              {
                stepId: "x",
                capability: "test.relay-lost",
                dependsOn: ["first"],
                timeout: { seconds: 2n },
                retry: { maxAttempts: 1 },
              },
            ],
          },
        ],
      },
    });
    const relay = defineAgent({
      name: "test",
      version: "1.0.0",
      skills: { "test.relay-lost": { description: "Relays", handler: async () => ({ ok: 1 }) } },
    });
    const first = await mesh.startAgent(relay, runId("lost-a"));
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "relay-lost",
    });
    await first.stop("gone before its step");
    const goalId = goal!.goalId;
    const waited = async () => {
      const events = await mesh.runtime.store.tenant(mesh.tenantId).events.list(goalId);
      return events.some((e) => e.type === "waitingForAgents");
    };
    await waitFor("the goal to wait for agents", waited, 20_000);
    const nc = await connectNats(nats!.url);
    const names = busNames(mesh.prefix);
    await (await jetstreamManager(nc)).streams.purge(names.streams.jobs, {
      filter: names.jobSubject("test.relay-lost"),
    });
    await nc.close();
    await mesh.startAgent(relay, runId("lost-b"));
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goalId, 30_000);
    expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
    const failed = eventsOf(events, "stepFailed");
    expect(failed.map((f) => [f.attempt, f.error?.code, f.willRetry])).toEqual([
      [1, "NOT_TAKEN", true],
    ]);
  });

  it("refuses an unknown kind or invalid input without storing a goal", async () => {
    const key = runId("refused");
    const unknown = { tenantId: mesh.tenantId, kind: "no-such-kind", idempotencyKey: key };
    expect(await codeOf(mesh.executor.submitGoal(unknown))).toBe(Code.NotFound);
    expect(await codeOf(mesh.executor.submitGoal(unknown))).toBe(Code.NotFound);
    expect(await goalsWithKey(mesh, "no-such-kind", key)).toEqual([]);

    const invalid = { tenantId: mesh.tenantId, kind: "echo", input: {}, idempotencyKey: key };
    expect(await codeOf(mesh.executor.submitGoal(invalid))).toBe(Code.InvalidArgument);
    expect(await goalsWithKey(mesh, "echo", key)).toEqual([]);
    // The same key is still free for a valid request.
    const ok = await mesh.executor.submitGoal({ ...invalid, input: { message: "now valid" } });
    expect(ok.created).toBe(true);
  });

  it("with the planner away plans playbook goals itself; other kinds answer UNAVAILABLE and store nothing", async () => {
    const planner = mesh.components.find((c) => c.name === "planner")!;
    await planner.stop();
    // A playbook's kind is planned in the executor (ADR-017): the planner's absence costs nothing.
    const { goal, created } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "echo",
      input: { message: "planned without the planner" },
    });
    expect(created).toBe(true);
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 30_000);
    expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
    // A kind without a playbook is the planner service's (its LLM planner): not accepted yet.
    const request = {
      tenantId: mesh.tenantId,
      kind: "no-playbook-yet",
      input: { message: "later" },
      idempotencyKey: runId("away"),
    };
    const err = await mesh.executor.submitGoal(request).catch((e: unknown) => MeshError.from(e));
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).code).toBe(Code.Unavailable);
    expect((err as MeshError).retryable).toBe(true);
    expect(await goalsWithKey(mesh, request.kind, request.idempotencyKey)).toEqual([]);
  });
});

describe.skipIf(!pg || !nats)("the wait for agents is bounded", () => {
  let mesh: TestMesh;
  const saved = process.env.AGENTMESH_EXECUTOR_AGENT_WAIT_MS;
  beforeAll(async () => {
    process.env.AGENTMESH_EXECUTOR_AGENT_WAIT_MS = "2000";
    mesh = await startTestMesh({ databaseUrl: pg!.url, natsUrl: nats!.url });
    await putOneStepPlaybook(mesh, "never", "test.never");
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.AGENTMESH_EXECUTOR_AGENT_WAIT_MS;
    else process.env.AGENTMESH_EXECUTOR_AGENT_WAIT_MS = saved;
    await mesh?.stop();
  });

  it("fails the goal with the planner's reason once the wait is over", async () => {
    const key = runId("never");
    const started = Date.now();
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "never",
      idempotencyKey: key,
    });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId, 30_000);
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status).toBe(GoalStatus.FAILED);
    expect(finished.error?.code).toBe("FAILED_PRECONDITION");
    expect(finished.error?.message).toContain("test.never");
    // Not before the wait was over; within the ticker's re-plan interval after it.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(kinds(events)).toEqual(["submitted", "waitingForAgents", "finished"]);
    // Resubmitting returns the failed goal: it was accepted, then failed for a stated reason.
    const again = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "never",
      idempotencyKey: key,
    });
    expect(again.created).toBe(false);
    expect(again.goal!.status).toBe(GoalStatus.FAILED);
  });
});
