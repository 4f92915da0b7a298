/**
 * Plans, steps and attempts as the executor writes them: chained on the
 * goal's versioned update, one statement, all of it or nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, isMeshError } from "../errors/mesh-error.js";
import { needPostgres } from "../testing/infra.js";
import type { NewGoalEvent } from "./goal-event-repository.js";
import type { GoalRecord, GoalStatusName } from "./records.js";
import type { Store, TenantStore } from "./store.js";
import { storeCounts } from "./store-metrics.js";
import { openTestStore, type TestStore } from "./testing.js";

const pg = await needPostgres();

async function codeOf(promise: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    if (!isMeshError(err)) throw err;
    return err.code;
  }
}

describe.skipIf(!pg)("plan repository on PostgreSQL", () => {
  let t: TestStore;
  let store: Store;
  let acme: TenantStore;

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: "acme", displayName: "Acme" });
    await store.tenants.create({ id: "beta", displayName: "Beta" });
    acme = store.tenant("acme");
  });
  afterAll(() => t?.cleanup());

  /** A goal planned as a → b, with a dispatched (attempt `<goal>:a:1`) and b pending. */
  async function plannedGoal(): Promise<{ goal: GoalRecord; planId: string; attemptId: string }> {
    const { goal } = await acme.goals.create({ kind: "planned" }, [
      { type: "submitted", data: {} },
    ]);
    const planId = `plan-${goal.id}`;
    const attemptId = `${goal.id}:a:1`;
    const planned = await acme.goals.update(
      goal.id,
      goal.version,
      { planId, status: "RUNNING" },
      {
        events: [{ type: "planned", data: {} }],
        afterEventSeq: 1,
        ctes: await acme.plans.plannedWrites(
          {
            id: planId,
            goalId: goal.id,
            goalKind: "planned",
            strategy: "solo",
            outputStep: "b",
            spec: { s: 1 },
          },
          [
            { stepId: "a", capability: "text.fetch", status: "DISPATCHED", attempts: 1 },
            { stepId: "b", capability: "text.summarize", dependsOn: ["a"] },
          ],
          [{ attemptId, stepId: "a", attempt: 1 }],
        ),
      },
    );
    return { goal: planned, planId, attemptId };
  }

  /** Everything a transition may write, to compare before and after. */
  async function snapshot(goalId: string, planId: string) {
    const goal = await acme.goals.get(goalId);
    return {
      goal: [goal.version, goal.lastEventSeq, goal.status],
      events: (await acme.events.list(goalId)).map((e) => e.type),
      steps: (await acme.plans.steps(planId)).map((s) => [s.stepId, s.version, s.status]),
      attempts: [
        ...(await acme.plans.attempts(planId, "a")),
        ...(await acme.plans.attempts(planId, "b")),
      ].map((a) => [a.attemptId, a.outcome, a.output, a.finishedAt]),
    };
  }

  /**
   * Writes a transition's step changes with the goal's update, as the
   * executor's batches do (`updateGoals`): ABORTED when the goal or a changed
   * step is not at its expected version.
   */
  async function saveSteps(
    goal: GoalRecord,
    changes: Parameters<TenantStore["plans"]["sealStepChanges"]>,
    also: { status?: GoalStatusName; events?: NewGoalEvent[] } = {},
  ): Promise<GoalRecord> {
    const update = await acme.goals.prepareUpdate(
      goal.id,
      goal.version,
      { status: also.status ?? goal.status },
      {
        events: also.events ?? [],
        afterEventSeq: goal.lastEventSeq,
        steps: await acme.plans.sealStepChanges(...changes),
      },
    );
    const [out] = await store.updateGoals([update]);
    if (out instanceof Error) throw out;
    return out!;
  }

  it("writes a plan with its steps and first attempts in the goal's update, or not at all", async () => {
    const { goal } = await acme.goals.create({ kind: "planned" });
    const planId = `plan-${goal.id}`;
    const writes = () =>
      acme.plans.plannedWrites(
        {
          id: planId,
          goalId: goal.id,
          goalKind: "planned",
          strategy: "s",
          outputStep: "b",
          spec: {},
        },
        [
          { stepId: "a", status: "DISPATCHED", attempts: 1 },
          { stepId: "b", dependsOn: ["a"] },
        ],
        [{ attemptId: `${goal.id}:a:1`, stepId: "a", attempt: 1 }],
      );
    // A stale goal version: no plan, no step, no attempt.
    expect(
      await codeOf(
        acme.goals.update(goal.id, goal.version + 1, { planId }, { ctes: await writes() }),
      ),
    ).toBe(Code.Aborted);
    expect(await codeOf(acme.plans.get(planId))).toBe(Code.NotFound);
    expect(await acme.plans.steps(planId)).toEqual([]);

    const before = storeCounts.statements;
    await acme.goals.update(goal.id, goal.version, { planId }, { ctes: await writes() });
    expect(storeCounts.statements - before).toBe(1);
    const steps = await acme.plans.steps(planId);
    expect(steps.map((s) => [s.stepId, s.position, s.dependsOn, s.status, s.version])).toEqual([
      ["a", 0, [], "DISPATCHED", 1],
      ["b", 1, ["a"], "PENDING", 1],
    ]);
    expect((await acme.plans.attempts(planId, "a")).map((a) => a.outcome)).toEqual(["DISPATCHED"]);
    expect((await acme.plans.stepsOfGoal(goal.id)).map((s) => s.stepId)).toEqual(["a", "b"]);
    expect((await acme.plans.latestForGoal(goal.id))?.id).toBe(planId);
    expect(await codeOf(store.tenant("beta").plans.get(planId))).toBe(Code.NotFound);
  });

  it("writes changed steps and their attempts in one statement, or nothing when one step moved on", async () => {
    const { goal, planId, attemptId } = await plannedGoal();
    const done = new Date();
    const save = () =>
      saveSteps(
        goal,
        [
          planId,
          [
            {
              stepId: "a",
              expectedVersion: 1,
              status: "SUCCEEDED",
              attempts: 1,
              output: { text: "x" },
              agentIds: ["agent-1"],
              finishedAt: done,
            },
            { stepId: "b", expectedVersion: 1, status: "DISPATCHED", attempts: 1, startedAt: done },
          ],
          [{ attemptId: `${goal.id}:b:1`, stepId: "b", attempt: 1 }],
          [
            {
              attemptId,
              stepId: "a",
              attempt: 1,
              outcome: "SUCCEEDED",
              agentId: "agent-1",
              output: { text: "x" },
              finishedAt: done,
            },
          ],
        ],
        { status: "RUNNING", events: [{ type: "stepSucceeded", data: {} }] },
      );

    // Step b moved on (a claim bumps its version): the goal, a, its attempt and the events stay as they were.
    await store.orm.em
      .fork()
      .execute(
        `update "${t.schema}".steps set lease_owner = 'ticker', version = version + 1 where plan_id = ? and step_id = 'b'`,
        [planId],
      );
    const untouched = await snapshot(goal.id, planId);
    const err = await save().catch((e: unknown) => e);
    expect(isMeshError(err) && err.code).toBe(Code.Aborted);
    expect((err as Error).message).toBe(
      `goal ${goal.id} or one of its steps was changed concurrently (expected version ${goal.version})`,
    );
    expect(await snapshot(goal.id, planId)).toEqual(untouched);

    // Both steps where the transition left them: everything is written, in one statement.
    await store.orm.em
      .fork()
      .execute(`update "${t.schema}".steps set version = 1 where plan_id = ? and step_id = 'b'`, [
        planId,
      ]);
    const before = storeCounts.statements;
    const saved = await save();
    expect(storeCounts.statements - before).toBe(1);
    expect([saved.version, saved.lastEventSeq]).toEqual([goal.version + 1, goal.lastEventSeq + 1]);
    const steps = await acme.plans.steps(planId);
    expect(steps.map((s) => [s.stepId, s.version, s.status, s.output, s.leaseOwner])).toEqual([
      ["a", 2, "SUCCEEDED", { text: "x" }, null],
      ["b", 2, "DISPATCHED", null, null],
    ]);
    expect(steps[0]!.finishedAt).toEqual(done);
    const [a1] = await acme.plans.attempts(planId, "a");
    expect([a1!.outcome, a1!.output, a1!.agentId, a1!.finishedAt, a1!.startedAt]).toEqual([
      "SUCCEEDED",
      { text: "x" },
      "agent-1",
      done,
      done,
    ]);
    expect((await acme.plans.attempts(planId, "b")).map((a) => [a.attemptId, a.outcome])).toEqual([
      [`${goal.id}:b:1`, "DISPATCHED"],
    ]);
  });

  it("starts an attempt only while dispatched and finishes it only once", async () => {
    const { goal, planId, attemptId } = await plannedGoal();
    let current = goal;
    let version = 1;
    const write = async (
      attempt: Parameters<TenantStore["plans"]["sealStepChanges"]>[3][number],
    ) => {
      current = await saveSteps(current, [
        planId,
        [{ stepId: "a", expectedVersion: version, status: "RUNNING", attempts: 1 }],
        [],
        [attempt],
      ]);
      version++;
      const [row] = await acme.plans.attempts(planId, "a");
      return [row!.outcome, row!.agentId, row!.output];
    };
    const started = new Date(Date.now() - 1000);
    const base = { attemptId, stepId: "a", attempt: 1 };
    expect(
      await write({ ...base, outcome: "RUNNING", agentId: "agent-1", startedAt: started }),
    ).toEqual(["RUNNING", "agent-1", null]);
    const finished = { ...base, outcome: "SUCCEEDED" as const, startedAt: started };
    expect(await write({ ...finished, output: "first", finishedAt: new Date() })).toEqual([
      "SUCCEEDED",
      "agent-1",
      "first",
    ]);
    // A redelivered result, and a late start: the attempt keeps its first result.
    expect(
      await write({ ...finished, agentId: "agent-2", output: "again", finishedAt: new Date() }),
    ).toEqual(["SUCCEEDED", "agent-1", "first"]);
    expect(
      await write({ ...base, outcome: "RUNNING", agentId: "agent-3", startedAt: new Date() }),
    ).toEqual(["SUCCEEDED", "agent-1", "first"]);
    expect((await acme.plans.attempts(planId, "a"))[0]!.startedAt).toEqual(started);
  });

  it("tells a missing goal from a stale one when writes are chained", async () => {
    const { goal } = await acme.goals.create({ kind: "planned" });
    const ctes = () =>
      acme.plans.plannedWrites(
        {
          id: `plan-${goal.id}`,
          goalId: goal.id,
          goalKind: "planned",
          strategy: "s",
          outputStep: "a",
          spec: {},
        },
        [{ stepId: "a", status: "DISPATCHED", attempts: 1 }],
        [],
      );
    expect(await codeOf(acme.goals.update("missing", 1, {}, { ctes: await ctes() }))).toBe(
      Code.NotFound,
    );
    const err = await acme.goals
      .update(goal.id, goal.version - 1, {}, { ctes: await ctes() })
      .catch((e: unknown) => e);
    expect(isMeshError(err) && [err.code, err.details.actualVersion]).toEqual([
      Code.Aborted,
      goal.version,
    ]);
    expect(await codeOf(acme.plans.get(`plan-${goal.id}`))).toBe(Code.NotFound);
  });

  it("refuses a step change with an invalid status before writing anything", async () => {
    const { planId } = await plannedGoal();
    await expect(
      acme.plans.sealStepChanges(
        planId,
        [{ stepId: "a", expectedVersion: 1, status: "DONE" as "FAILED" }],
        [],
        [],
      ),
    ).rejects.toThrow(/invalid step status/);
    expect((await acme.plans.getStep(planId, "a")).status).toBe("DISPATCHED");
  });

  it("releases a claimed step with its next due time only while the lease is the owner's", async () => {
    const { goal, planId } = await plannedGoal();
    const due = new Date(Date.now() - 1_000);
    const claim = (owner: string) =>
      store.orm.em
        .fork()
        .execute(
          `update "${t.schema}".steps set lease_owner = ?, lease_expires_at = now() + interval '1 minute', next_attempt_at = ?, version = version + 1 where plan_id = ? and step_id = 'a'`,
          [owner, due, planId],
        );
    await claim("replica-1");
    const claimed = await acme.plans.getStep(planId, "a");
    const next = new Date(Date.now() + 30_000);
    // Another replica's lease: not this one's to give back.
    expect(await acme.plans.releaseStep(planId, "a", "replica-2", next)).toBe(false);
    expect(await acme.plans.getStep(planId, "a")).toEqual(claimed);
    // The owner's: due at the new time, lease cleared, version bumped.
    expect(await acme.plans.releaseStep(planId, "a", "replica-1", next)).toBe(true);
    const released = await acme.plans.getStep(planId, "a");
    expect([released.leaseOwner, released.leaseExpiresAt, released.nextAttemptAt]).toEqual([
      null,
      null,
      next,
    ]);
    expect(released.version).toBe(claimed.version + 1);
    // Released once: a second release (or one after a transition cleared the lease) does nothing.
    expect(await acme.plans.releaseStep(planId, "a", "replica-1", due)).toBe(false);
    expect((await acme.plans.getStep(planId, "a")).nextAttemptAt).toEqual(next);
    // Another tenant cannot release it.
    await claim("replica-1");
    expect(await store.tenant("beta").plans.releaseStep(planId, "a", "replica-1", next)).toBe(
      false,
    );
    expect(goal.tenantId).toBe("acme");
  });
});
