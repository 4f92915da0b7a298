// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates
/**
 * Transitions of real goals (the reducer's) saved to PostgreSQL: each is one
 * statement, and a transition that raced another writer writes nothing.
 */
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { StepResultSchema, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import { type Plan, PlanSchema, StepSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, isMeshError } from "../../lib/errors/mesh-error.js";
import { goalSubmittedEvent } from "../../lib/store/audit-log.js";
import type { Store, TenantStore } from "../../lib/store/store.js";
import { storeCounts } from "../../lib/store/store-metrics.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import {
  type GoalCommand,
  type GoalInput,
  type GoalState,
  initGoal,
  reduceGoal,
} from "./domain/index.js";
import {
  commitTransition,
  createdGoal,
  type DueTimes,
  defaultDueTimes,
  goalCreation,
  goalStateOf,
  type LoadedGoal,
  loadGoal,
  prepareTransition,
} from "./goal-store.js";

const pg = await needPostgres();

/** Every dispatched step is due for a re-dispatch check at once, so a ticker may claim it. */
const dueNow: DueTimes = { ...defaultDueTimes, redispatchCheckMs: 0 };

function plan(planId: string, steps: { id: string; dependsOn?: string[]; input?: object }[]): Plan {
  return create(PlanSchema, {
    planId,
    strategy: "solo",
    steps: steps.map((s) =>
      create(StepSchema, {
        stepId: s.id,
        capability: "util.echo",
        dependsOn: s.dependsOn ?? [],
        input: (s.input ?? {}) as Record<string, JsonValue>,
        replicas: 1,
      }),
    ),
  });
}

describe.skipIf(!pg)("goal store on PostgreSQL", () => {
  let t: TestStore;
  let store: Store;
  let tenant: TenantStore;
  let n = 0;

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: "acme", displayName: "Acme" });
    tenant = store.tenant("acme");
  });
  afterAll(() => t?.cleanup());

  /** Submits a goal and saves the transition that plans it with `steps`. */
  async function plannedGoal(steps: Parameters<typeof plan>[1]): Promise<LoadedGoal> {
    const goalId = `goal-${++n}`;
    const now = Date.now();
    const { goal } = await tenant.goals.create(
      { id: goalId, kind: "k", deadline: new Date(now + 60_000) },
      [{ type: "submitted", data: {} }],
    );
    const loaded = { goal, state: goalStateOf(goal), stepVersions: new Map(), plan: undefined };
    return transition(loaded, { type: "planned", plan: plan(`plan-${goalId}`, steps), at: now });
  }

  /** Reduces `input` from `loaded` and saves it, checking it took exactly one statement. */
  async function transition(loaded: LoadedGoal, input: GoalInput): Promise<LoadedGoal> {
    const { state, commands } = reduceGoal(loaded.state, input);
    expect(state).not.toBe(loaded.state);
    const before = storeCounts.statements;
    const saved = await save(loaded, state, commands, input.at);
    expect(storeCounts.statements - before).toBe(1);
    return saved;
  }

  /**
   * Saves a transition as `GoalEngine` does: one that plans the goal alone
   * (`commitTransition`), any other prepared and written by `updateGoals`.
   */
  async function save(
    loaded: LoadedGoal,
    state: GoalState,
    commands: readonly GoalCommand[],
    at: number,
  ): Promise<LoadedGoal> {
    const prepared = await prepareTransition(store, "acme", loaded, state, commands, at, dueNow);
    if (prepared === undefined) {
      return commitTransition(store, "acme", loaded, state, commands, at, dueNow);
    }
    const [out] = await store.updateGoals([prepared.update]);
    if (out instanceof Error) throw out;
    return prepared.saved(out!);
  }

  function result(
    loaded: LoadedGoal,
    stepId: string,
    status: StepResultStatus,
    output?: JsonValue,
  ): GoalInput {
    const attempt = loaded.state.steps[stepId]!.attempts.at(-1)!;
    return {
      type: "result",
      at: Date.now(),
      result: create(StepResultSchema, {
        attemptId: attempt.attemptId,
        goalId: loaded.goal.id,
        tenantId: "acme",
        stepId,
        attempt: attempt.attempt,
        agentId: "agent-1",
        status,
        ...(output !== undefined ? { output: fromJson(ValueSchema, output) } : {}),
      }),
    };
  }

  /** The goal as stored, in the terms a transition writes. */
  async function stored(goalId: string) {
    const loaded = await loadGoal(tenant, goalId);
    const { goal, state } = loaded;
    const planId = state.plan?.planId ?? "";
    return {
      goal: [goal.version, goal.lastEventSeq, goal.status],
      events: (await tenant.events.list(goalId)).map((e) => e.type),
      steps: (await tenant.plans.steps(planId)).map((s) => ({
        id: s.stepId,
        version: s.version,
        status: s.status,
        output: s.output,
        lease: s.leaseOwner,
      })),
      attempts: (await tenant.plans.attemptsOfPlans([planId])).map((a) => ({
        id: a.attemptId,
        outcome: a.outcome,
        output: a.output,
        agentId: a.agentId,
      })),
    };
  }

  /** What the saved goal says next to what a fresh load finds. */
  async function expectStoredAsSaved(saved: LoadedGoal): Promise<LoadedGoal> {
    const fresh = await loadGoal(tenant, saved.goal.id);
    expect(fresh.goal).toEqual(saved.goal);
    expect(fresh.stepVersions).toEqual(saved.stepVersions);
    const view = (l: LoadedGoal) => ({
      status: l.state.status,
      sequence: l.state.sequence,
      output: l.state.output,
      steps: l.state.stepOrder.map((id) => {
        const s = l.state.steps[id]!;
        return {
          id,
          status: s.status,
          attempt: s.attempt,
          output: s.output,
          error: s.error?.code,
          agentIds: s.agentIds,
          finished: s.finishedAtMs,
          attempts: s.attempts.map((a) => [
            a.attemptId,
            a.status,
            a.agentId,
            a.output,
            a.finishedAtMs,
          ]),
        };
      }),
    });
    expect(view(fresh)).toEqual(view(saved));
    return fresh;
  }

  it("finishes a step and dispatches the one depending on it in one statement", async () => {
    const planned = await plannedGoal([
      { id: "a" },
      { id: "b", dependsOn: ["a"], input: { t: "${steps.a.output}" } },
    ]);
    await expectStoredAsSaved(planned);
    const saved = await transition(planned, result(planned, "a", StepResultStatus.SUCCEEDED, "hi"));
    expect(saved.state.steps.a!.status).toBe(StepStatus.SUCCEEDED);
    expect(saved.state.steps.b!.status).toBe(StepStatus.DISPATCHED);
    await expectStoredAsSaved(saved);
    expect(await stored(saved.goal.id)).toMatchObject({
      goal: [planned.goal.version + 1, saved.state.sequence, "RUNNING"],
      steps: [
        { id: "a", version: 2, status: "SUCCEEDED", output: "hi" },
        { id: "b", version: 2, status: "DISPATCHED" },
      ],
      attempts: [
        { id: `${saved.goal.id}:a:1:0`, outcome: "SUCCEEDED", output: "hi", agentId: "agent-1" },
        { id: `${saved.goal.id}:b:1:0`, outcome: "DISPATCHED", output: null },
      ],
    });
    const done = await transition(saved, result(saved, "b", StepResultStatus.SUCCEEDED, "bye"));
    expect((await expectStoredAsSaved(done)).goal.status).toBe("SUCCEEDED");
  });

  it("writes nothing for a result that lost a race with a ticker's claim, and applies it from a fresh load", async () => {
    const planned = await plannedGoal([{ id: "a" }, { id: "b", dependsOn: ["a"] }]);
    const input = result(planned, "a", StepResultStatus.SUCCEEDED, "hi");
    const { state, commands } = reduceGoal(planned.state, input);
    const commit = () => save(planned, state, commands, input.at);

    // The ticker claims step a while the result is being saved: the save waits for the step's lock.
    let saving: Promise<unknown> = Promise.resolve();
    let claimed = false;
    await store.transaction(async (tx) => {
      const steps = await tx.work.claimDueSteps({ owner: "ticker", statuses: ["DISPATCHED"] });
      claimed = steps.some((s) => s.goalId === planned.goal.id && s.stepId === "a");
      saving = commit().catch((err: unknown) => err);
      expect(await waitForLockWait()).toBe(true);
    });
    expect(claimed).toBe(true);
    const claimedState = await stored(planned.goal.id);
    const err = await saving;
    expect(isMeshError(err) && err.code).toBe(Code.Aborted);
    expect(await stored(planned.goal.id)).toEqual(claimedState);
    expect(claimedState).toMatchObject({
      goal: [planned.goal.version, planned.state.sequence, "RUNNING"],
      steps: [
        { id: "a", version: 2, status: "DISPATCHED", lease: "ticker" },
        { id: "b", version: 1, status: "PENDING" },
      ],
      attempts: [{ id: `${planned.goal.id}:a:1:0`, outcome: "DISPATCHED", output: null }],
    });
    expect(claimedState.events).toEqual(["submitted", "planned", "stepDispatched"]);

    // The same stale goal after the claim committed: ABORTED again, still nothing written.
    expect(await commit().catch((e: unknown) => isMeshError(e) && e.code)).toBe(Code.Aborted);
    expect(await stored(planned.goal.id)).toEqual(claimedState);

    // What GoalEngine.apply does next: a fresh load, the same result, saved.
    const fresh = await loadGoal(tenant, planned.goal.id);
    const saved = await transition(fresh, { ...input, at: Date.now() });
    await expectStoredAsSaved(saved);
    expect(await stored(planned.goal.id)).toMatchObject({
      steps: [
        { id: "a", version: 3, status: "SUCCEEDED", output: "hi", lease: null },
        { id: "b", version: 2, status: "DISPATCHED" },
      ],
    });
  });

  it("changes nothing for a redelivered result", async () => {
    const planned = await plannedGoal([{ id: "a" }]);
    const input = result(planned, "a", StepResultStatus.SUCCEEDED, "once");
    const saved = await transition(planned, input);
    const after = await stored(saved.goal.id);
    expect(after.goal[2]).toBe("SUCCEEDED");
    // From the goal as it now is: the reducer has nothing to do.
    const fresh = await loadGoal(tenant, saved.goal.id);
    expect(reduceGoal(fresh.state, { ...input, at: Date.now() }).state).toBe(fresh.state);
    // From a replica's stale copy of the goal: the write is refused as a whole.
    const again = { ...input, at: Date.now() };
    const { state, commands } = reduceGoal(planned.state, again);
    const err = await save(planned, state, commands, again.at).catch((e: unknown) => e);
    expect(isMeshError(err) && err.code).toBe(Code.Aborted);
    expect(await stored(saved.goal.id)).toEqual(after);
  });

  it("starts, then cancels, several steps and their attempts in one statement each", async () => {
    const planned = await plannedGoal([{ id: "a" }, { id: "b" }]);
    const running = await transition(planned, result(planned, "a", StepResultStatus.STARTED));
    expect((await expectStoredAsSaved(running)).state.steps.a!.status).toBe(StepStatus.RUNNING);
    const cancelled = await transition(running, {
      type: "cancelRequested",
      reason: "enough",
      at: Date.now(),
    });
    expect(cancelled.state.status).toBe(GoalStatus.CANCELLED);
    await expectStoredAsSaved(cancelled);
    expect(await stored(cancelled.goal.id)).toMatchObject({
      goal: [planned.goal.version + 2, cancelled.state.sequence, "CANCELLED"],
      steps: [
        { id: "a", version: 3, status: "CANCELLED" },
        { id: "b", version: 2, status: "CANCELLED" },
      ],
      attempts: [
        { id: `${planned.goal.id}:a:1:0`, outcome: "CANCELLED", agentId: "agent-1" },
        { id: `${planned.goal.id}:b:1:0`, outcome: "CANCELLED", agentId: null },
      ],
    });
  });

  it("saves a plan that fails at once (and the attempt it cancels) in one statement", async () => {
    const failed = await plannedGoal([
      { id: "a" },
      { id: "b", input: { t: "${steps.a.output.x}" } },
    ]);
    expect(failed.state.status).toBe(GoalStatus.FAILED);
    await expectStoredAsSaved(failed);
    expect(await stored(failed.goal.id)).toMatchObject({
      goal: [2, failed.state.sequence, "FAILED"],
      steps: [
        { id: "a", version: 1, status: "CANCELLED" },
        { id: "b", version: 1, status: "FAILED" },
      ],
      attempts: [{ id: `${failed.goal.id}:a:1:0`, outcome: "CANCELLED" }],
    });
  });

  /**
   * A goal as `GoalEngine.submit` stores it, its plan known at `now`: created
   * planned in one statement (`together`), or created and then planned.
   */
  async function submitted(
    goalId: string,
    steps: Parameters<typeof plan>[1],
    now: number,
    together: boolean,
  ): Promise<LoadedGoal> {
    const deadlineMs = now + 60_000;
    const init = initGoal({ goalId, tenantId: "acme", kind: "k", createdAtMs: now, deadlineMs });
    const planned = plan(`plan-${goalId}`, steps);
    const goal = { id: goalId, kind: "k", deadline: new Date(deadlineMs) };
    const audit = goalSubmittedEvent({ actor: "t", tenantId: "acme", goalId, kind: "k" });
    if (!together) {
      const events = init.commands.flatMap((c) =>
        c.type === "emitEvent"
          ? [{ type: c.event.kind.case!, data: toJson(GoalEventSchema, c.event) }]
          : [],
      );
      const { goal: row } = await tenant.goals.create(goal, events, audit);
      const loaded = {
        goal: row,
        state: goalStateOf(row),
        stepVersions: new Map(),
        plan: undefined,
      };
      const t = reduceGoal(loaded.state, { type: "planned", plan: planned, at: now });
      return commitTransition(store, "acme", loaded, t.state, t.commands, now, dueNow);
    }
    const t = reduceGoal(init.state, { type: "planned", plan: planned, at: now });
    const commands = [...init.commands, ...t.commands];
    const creation = await goalCreation(tenant, goal, t.state, commands, audit, now, dueNow);
    const before = storeCounts.statements;
    const [out] = await store.createGoals([creation]);
    expect(storeCounts.statements - before).toBe(1);
    if (out instanceof Error) throw out;
    expect(out!.created).toBe(true);
    return createdGoal(out!.goal, t.state, planned);
  }

  /** Every row a goal has, but what differs between two goals stored alike (ids, write times). */
  async function rowsOf(goalId: string) {
    const em = store.orm.em.fork();
    const q = async (sql: string) =>
      JSON.parse(
        JSON.stringify(await em.execute(sql, [goalId])).replaceAll(goalId, "G"),
      ) as unknown[];
    return {
      goal: await q(
        "select to_jsonb(g) - 'created_at' - 'updated_at' - 'version' as r from goals g where id = ?",
      ),
      events: await q("select type, data from goal_events where goal_id = ? order by sequence"),
      plan: await q("select to_jsonb(p) - 'created_at' as r from plans p where goal_id = ?"),
      steps: await q(
        "select to_jsonb(s) - 'created_at' - 'updated_at' as r from steps s where goal_id = ? order by position",
      ),
      attempts: await q(
        "select to_jsonb(a) - 'dispatched_at' - 'created_at' - 'updated_at' as r from step_attempts a where goal_id = ? order by attempt_id",
      ),
      audit: await q(
        "select details, action, actor from audit_events where resource = 'goal/' || ? order by seq",
      ),
    };
  }

  it("creates a goal planned in one statement, stored as creating it and then planning it stores it", async () => {
    for (const steps of [
      [{ id: "a" }, { id: "b", dependsOn: ["a"], input: { t: "${steps.a.output}" } }],
      [{ id: "a" }, { id: "b" }],
      // A plan that fails at once: the goal is created FAILED, with its cancelled attempt.
      [{ id: "a" }, { id: "b", input: { t: "${steps.a.output.x}" } }],
    ]) {
      const now = Date.now();
      const apart = await submitted(`goal-${++n}`, steps, now, false);
      const together = await submitted(`goal-${++n}`, steps, now, true);
      const rows = await rowsOf(together.goal.id);
      expect(rows).toEqual(await rowsOf(apart.goal.id));
      expect([rows.goal, rows.plan, rows.steps, rows.audit].map((r) => r.length)).toEqual([
        1,
        1,
        steps.length,
        1,
      ]);
      expect(rows.events.length).toBeGreaterThanOrEqual(3);
      await expectStoredAsSaved(together);
      expect(together.state.sequence).toBe(apart.state.sequence);
      // One version: the goal was written once.
      expect([together.goal.version, apart.goal.version]).toEqual([1, 2]);
    }
    expect((await store.audit.verify()).ok).toBe(true);
  });

  /** `count` goals planned with `steps`, one after the other. */
  async function plannedGoals(count: number, steps: Parameters<typeof plan>[1]) {
    const out: LoadedGoal[] = [];
    for (let i = 0; i < count; i++) out.push(await plannedGoal(steps));
    return out;
  }

  /** `input` reduced from `loaded`, prepared to be saved with other goals' transitions. */
  async function prepared(loaded: LoadedGoal, input: GoalInput) {
    const { state, commands } = reduceGoal(loaded.state, input);
    expect(state).not.toBe(loaded.state);
    const p = await prepareTransition(store, "acme", loaded, state, commands, input.at, dueNow);
    return p!;
  }

  it("saves transitions of several goals in one statement; a goal that moved on, a claimed step and a stale result are refused alone", async () => {
    const steps = [{ id: "a" }, { id: "b", dependsOn: ["a"] }];
    const [ok1, moved, claimed, redelivered, ok2] = await plannedGoals(5, steps);
    const done = (g: LoadedGoal) => result(g, "a", StepResultStatus.SUCCEEDED, `out-${g.goal.id}`);
    const batch = await Promise.all(
      [ok1!, moved!, claimed!, redelivered!, ok2!].map((g) => prepared(g, done(g))),
    );
    // Meanwhile: another replica moved one goal on; a ticker claimed a step of another
    // (its version, not the goal's, changed); the third's result was saved already.
    await transition(moved!, result(moved!, "a", StepResultStatus.STARTED));
    await store.orm.em
      .fork()
      .execute("update steps set version = version + 1 where goal_id = ? and step_id = 'a'", [
        claimed!.goal.id,
      ]);
    await transition(redelivered!, done(redelivered!));
    const untouched = await Promise.all(
      [moved!, claimed!, redelivered!].map((g) => stored(g.goal.id)),
    );

    const before = storeCounts.statements;
    const out = await store.updateGoals(batch.map((p) => p.update));
    expect(storeCounts.statements - before).toBe(1);
    expect(out.map((o) => (o instanceof Error ? isMeshError(o) && o.code : "saved"))).toEqual([
      "saved",
      Code.Aborted,
      Code.Aborted,
      Code.Aborted,
      "saved",
    ]);
    for (const [k, g] of [ok1!, ok2!].entries()) {
      const saved = batch[k === 0 ? 0 : 4]!.saved(out[k === 0 ? 0 : 4] as never);
      await expectStoredAsSaved(saved);
      expect(await stored(g.goal.id)).toMatchObject({
        goal: [g.goal.version + 1, saved.state.sequence, "RUNNING"],
        steps: [
          { id: "a", version: 2, status: "SUCCEEDED", output: `out-${g.goal.id}` },
          { id: "b", version: 2, status: "DISPATCHED" },
        ],
        attempts: [
          { id: `${g.goal.id}:a:1:0`, outcome: "SUCCEEDED", output: `out-${g.goal.id}` },
          { id: `${g.goal.id}:b:1:0`, outcome: "DISPATCHED" },
        ],
      });
    }
    // Nothing of a refused transition was written.
    expect(
      await Promise.all([moved!, claimed!, redelivered!].map((g) => stored(g.goal.id))),
    ).toEqual(untouched);
    // The redelivered result from a fresh load changes nothing: applied once.
    const fresh = await loadGoal(tenant, redelivered!.goal.id);
    expect(reduceGoal(fresh.state, { ...done(redelivered!), at: Date.now() }).state).toBe(
      fresh.state,
    );
    // What GoalEngine.apply does with the others: a fresh load, the same result, saved.
    for (const g of [moved!, claimed!]) {
      const again = await loadGoal(tenant, g.goal.id);
      const p = await prepared(again, { ...done(g), at: Date.now() });
      const [saved] = await store.updateGoals([p.update]);
      if (saved instanceof Error) throw saved;
      expect((await expectStoredAsSaved(p.saved(saved!))).state.steps.a!.status).toBe(
        StepStatus.SUCCEEDED,
      );
    }
  });

  it("writes two transitions of one goal in one call one after the other: the second, from the same load, is refused", async () => {
    const [g, other] = await plannedGoals(2, [{ id: "a" }]);
    const first = await prepared(g!, result(g!, "a", StepResultStatus.SUCCEEDED, 1));
    const second = await prepared(g!, result(g!, "a", StepResultStatus.FAILED));
    const third = await prepared(other!, result(other!, "a", StepResultStatus.SUCCEEDED, 3));
    const before = storeCounts.statements;
    const out = await store.updateGoals([first.update, second.update, third.update]);
    expect(storeCounts.statements - before).toBe(2);
    expect(out.map((o) => (o instanceof Error ? isMeshError(o) && o.code : o!.status))).toEqual([
      "SUCCEEDED",
      Code.Aborted,
      "SUCCEEDED",
    ]);
    expect((await stored(g!.goal.id)).steps).toMatchObject([{ status: "SUCCEEDED", output: 1 }]);
  });

  it("saves the other goals of a batch that waited for a ticker's claim, and refuses the claimed one", async () => {
    const [claimed, free] = await plannedGoals(2, [{ id: "a" }]);
    // Only the first goal's step is due: the ticker claims it and nothing else of this test.
    await store.orm.em
      .fork()
      .execute("update steps set next_attempt_at = now() + interval '1 hour' where goal_id = ?", [
        free!.goal.id,
      ]);
    const batch = await Promise.all(
      [claimed!, free!].map((g) => prepared(g, result(g, "a", StepResultStatus.SUCCEEDED, "x"))),
    );
    let saving: Promise<unknown> = Promise.resolve();
    await store.transaction(async (tx) => {
      const due = await tx.work.claimDueSteps({
        owner: "ticker",
        statuses: ["DISPATCHED"],
        limit: 1000,
      });
      expect(due.some((s) => s.goalId === claimed!.goal.id)).toBe(true);
      expect(due.some((s) => s.goalId === free!.goal.id)).toBe(false);
      saving = store.updateGoals(batch.map((p) => p.update));
      expect(await waitForLockWait()).toBe(true);
    });
    const out = (await saving) as unknown[];
    expect(out.map((o) => (o instanceof Error ? isMeshError(o) && o.code : "saved"))).toEqual([
      Code.Aborted,
      "saved",
    ]);
    expect(await stored(claimed!.goal.id)).toMatchObject({
      goal: [claimed!.goal.version, claimed!.state.sequence, "RUNNING"],
      steps: [{ id: "a", version: 2, status: "DISPATCHED", lease: "ticker" }],
    });
    expect((await stored(free!.goal.id)).goal[2]).toBe("SUCCEEDED");
  });

  /** Whether a batch of transitions (`updateGoals`' statement) waits for a row lock (polled up to 5 s). */
  async function waitForLockWait(): Promise<boolean> {
    const em = store.orm.em.fork();
    for (let i = 0; i < 100; i++) {
      // Within a transaction pg_stat_activity answers from a snapshot: take a new one.
      await em.execute("select pg_stat_clear_snapshot()");
      const [row] = await em.execute<{ n: string }[]>(
        `select count(*) as n from pg_stat_activity
         where datname = current_database() and wait_event_type = 'Lock'
           and query like 'with x as (%'`,
      );
      if (Number(row?.n) > 0) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }
});
