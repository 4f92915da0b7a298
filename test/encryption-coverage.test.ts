/**
 * Every tenant payload the store keeps, against a real PostgreSQL with data
 * keys wrapped by a file KEK: goal input, output and error, event data, the
 * plan (with its steps' inputs and its rationale), step outputs and errors,
 * attempt outputs and errors, and the learning service's experience. In
 * `sensitive` mode just the fields the contract marks sensitive are sealed
 * (errors and the plan's shape stay in clear); in `all` mode every payload
 * column is sealed whole. Read straight from PostgreSQL neither holds the
 * secret; through the repositories both read back exactly what was written;
 * rotation keeps old payloads readable; after an erasure none of those reads
 * succeeds and other tenants are untouched.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type JsonObject, toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalEventSchema } from "../gen/agentmesh/v1/executor_pb.js";
import { OutcomeSchema } from "../gen/agentmesh/v1/jobs_pb.js";
import { PlanSchema } from "../gen/agentmesh/v1/planner_pb.js";
import { Code } from "../lib/errors/mesh-error.js";
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import type { SecretStore } from "../lib/secrets/secret-store.js";
import type { EncryptionMode } from "../lib/store/payload-cipher.js";
import { openStore, type Store } from "../lib/store/store.js";
import { eraseTenant, rotateTenantKeys, setTenantEncryption } from "../lib/store/tenant-keys.js";
import { openTestStore, type TestStore } from "../lib/store/testing.js";
import { needPostgres } from "../lib/testing/infra.js";

const pg = await needPostgres();
/** Sensitive per the contract (inputs, outputs, the decision context's text). */
const secret = "patient 4711, SSN 123-45-6789";
/** In fields the contract does not mark (errors, the plan's rationale): in clear unless `all`. */
const note = "disk quota of ward 7 exceeded";

/** What one goal of a tenant leaves in every payload column, as written. */
function payloads(goalId: string, tenantId: string) {
  const plan = toJson(
    PlanSchema,
    create(PlanSchema, {
      planId: `plan-${goalId}`,
      goalId,
      goalKind: "triage",
      strategy: "solo",
      outputStep: "fetch",
      rationale: note,
      steps: [
        { stepId: "fetch", capability: "records.fetch", input: { query: secret } },
        {
          stepId: "consult",
          dependsOn: ["fetch"],
          subGoal: { kind: "consult", input: { q: secret } },
        },
      ],
    }),
  ) as JsonObject;
  const event = (kind: Parameters<typeof create<typeof GoalEventSchema>>[1]) =>
    toJson(GoalEventSchema, create(GoalEventSchema, kind)) as JsonObject;
  return {
    input: { text: secret },
    output: { summary: secret },
    error: { code: "INTERNAL", message: note, retryable: false },
    plan,
    planned: event({
      kind: {
        case: "planned",
        value: { plan: { steps: [{ stepId: "fetch", input: { query: secret } }] } },
      },
    }),
    succeeded: event({
      kind: {
        case: "stepSucceeded",
        value: {
          stepId: "fetch",
          attempt: 1,
          output: { kind: { case: "stringValue", value: secret } },
        },
      },
    }),
    failed: event({
      kind: {
        case: "stepFailed",
        value: { stepId: "consult", attempt: 1, error: { code: "INTERNAL", message: note } },
      },
    }),
    outcome: toJson(
      OutcomeSchema,
      create(OutcomeSchema, {
        goalId,
        context: {
          tenantId,
          goalKind: "triage",
          sizeClass: "m",
          text: secret,
          features: { ward: secret },
        },
        strategy: "solo",
        success: false,
        cost: 2,
      }),
    ) as JsonObject,
  };
}

/** Writes a goal of `tenantId` through every payload column: planned, one step done, one failed, an experience. */
async function goalThroughEveryColumn(store: Store, tenantId: string) {
  const tenant = store.tenant(tenantId);
  const { goal } = await tenant.goals.create({ kind: "triage", input: { text: secret } });
  const p = payloads(goal.id, tenantId);
  const planId = `plan-${goal.id}`;
  const planned = await tenant.goals.update(
    goal.id,
    goal.version,
    { planId, status: "RUNNING" },
    {
      events: [{ type: "planned", data: p.planned }],
      ctes: await tenant.plans.plannedWrites(
        {
          id: planId,
          goalId: goal.id,
          goalKind: "triage",
          strategy: "solo",
          outputStep: "fetch",
          rationale: note,
          spec: p.plan,
        },
        [
          {
            stepId: "fetch",
            capability: "records.fetch",
            status: "DISPATCHED",
            attempts: 1,
            spec: { input: { query: secret } },
          },
          { stepId: "consult", dependsOn: ["fetch"], status: "DISPATCHED", attempts: 1 },
        ],
        [
          { attemptId: `${goal.id}:fetch:1`, stepId: "fetch", attempt: 1 },
          { attemptId: `${goal.id}:consult:1`, stepId: "consult", attempt: 1 },
        ],
      ),
    },
  );
  const finishedAt = new Date();
  const update = await tenant.goals.prepareUpdate(
    goal.id,
    planned.version,
    { status: "FAILED", output: p.output, error: p.error },
    {
      afterEventSeq: planned.lastEventSeq,
      events: [
        { type: "stepSucceeded", data: p.succeeded },
        { type: "stepFailed", data: p.failed },
      ],
      steps: await tenant.plans.sealStepChanges(
        planId,
        [
          {
            stepId: "fetch",
            expectedVersion: 1,
            status: "SUCCEEDED",
            attempts: 1,
            output: secret,
            finishedAt,
          },
          {
            stepId: "consult",
            expectedVersion: 1,
            status: "FAILED",
            attempts: 1,
            error: p.error,
            finishedAt,
          },
        ],
        [],
        [
          {
            attemptId: `${goal.id}:fetch:1`,
            stepId: "fetch",
            attempt: 1,
            outcome: "SUCCEEDED",
            output: secret,
            finishedAt,
          },
          {
            attemptId: `${goal.id}:consult:1`,
            stepId: "consult",
            attempt: 1,
            outcome: "FAILED",
            error: p.error,
            finishedAt,
          },
        ],
      ),
    },
  );
  const [done] = await store.updateGoals([update]);
  if (!done || done instanceof Error) throw done ?? new Error("no goal updated");
  await tenant.experiences.record({
    goalId: goal.id,
    goalKind: "triage",
    bucket: `tenant=${tenantId}/kind=triage/size=m`,
    strategy: "solo",
    success: false,
    latencyMs: 10,
    cost: 2,
    features: [0.5, 0.5],
    signature: { hash: "7", bands: [1, 2] },
    outcome: p.outcome,
  });
  return { goal: done, planId, p };
}

/** Every read of a goal's payloads through the store, each as what it returns. */
function reads(store: Store, tenantId: string, goalId: string, planId: string) {
  const tenant = store.tenant(tenantId);
  return {
    goal: () => tenant.goals.get(goalId),
    goals: () => tenant.goals.list(),
    events: () => tenant.events.list(goalId),
    plan: () => tenant.plans.get(planId),
    steps: () => tenant.plans.steps(planId),
    attempts: () => tenant.plans.attemptsOfPlans([planId]),
    experiences: () => tenant.experiences.list(),
    similar: () =>
      tenant.experiences.similar({
        goalKind: "triage",
        strategies: ["solo"],
        signature: { hash: "7", bands: [1] },
        limit: 5,
      }),
  };
}

describe.skipIf(!pg)("encryption at rest covers every payload column", () => {
  let t: TestStore;
  let secrets: SecretStore;
  const raw = async (sql: string, params: unknown[] = []) =>
    t.store.orm.em.fork().execute<Record<string, string>[]>(sql, params);
  /** Every payload column of the tenant's rows as PostgreSQL stores them, as text. */
  const storedText = async (tenantId: string) => {
    const q = async (sql: string) =>
      (await raw(sql, [tenantId])).map((r) => Object.values(r).join(" "));
    return {
      goals: await q(
        "select input::text, output::text, error::text from goals where tenant_id = ?",
      ),
      events: await q("select data::text from goal_events where tenant_id = ?"),
      plans: await q("select spec::text, rationale from plans where tenant_id = ?"),
      steps: await q("select spec::text, output::text, error::text from steps where tenant_id = ?"),
      attempts: await q("select output::text, error::text from step_attempts where tenant_id = ?"),
      experiences: await q("select outcome::text from experiences where tenant_id = ?"),
    };
  };

  beforeAll(async () => {
    secrets = openFileSecrets({ home: mkdtempSync(join(tmpdir(), "enc-cov-")), env: {} });
    t = await openTestStore({ databaseUrl: pg!.url, secrets });
    const modes: [string, EncryptionMode][] = [
      ["sens", "sensitive"],
      ["every", "all"],
      ["bystander", "all"],
      ["plain", "off"],
    ];
    for (const [id, mode] of modes) {
      await t.store.tenants.create({ id, displayName: id });
      await setTenantEncryption(t.store, id, mode, "ops/test");
    }
  });
  afterAll(async () => {
    await t?.cleanup();
    await secrets?.close();
  });

  it("stores no plaintext of a sensitive field in any table, in either mode, and reads every payload back", async () => {
    for (const tenantId of ["sens", "every"]) {
      const { goal, planId, p } = await goalThroughEveryColumn(t.store, tenantId);
      const stored = await storedText(tenantId);
      for (const [table, rows] of Object.entries(stored)) {
        expect(rows.length, `${tenantId} ${table}`).toBeGreaterThan(0);
        for (const row of rows) expect(row, `${tenantId} ${table}`).not.toContain("123-45-6789");
      }
      const r = reads(t.store, tenantId, goal.id, planId);
      const read = await r.goal();
      expect([read.input, read.output, read.error]).toEqual([p.input, p.output, p.error]);
      expect((await r.events()).map((e) => e.data)).toEqual([p.planned, p.succeeded, p.failed]);
      const plan = await r.plan();
      expect([plan.spec, plan.rationale]).toEqual([p.plan, note]);
      expect((await r.steps()).map((s) => [s.stepId, s.spec, s.output, s.error])).toEqual([
        ["fetch", { input: { query: secret } }, secret, null],
        ["consult", {}, null, p.error],
      ]);
      expect((await r.attempts()).map((a) => [a.output, a.error])).toEqual([
        [null, p.error],
        [secret, null],
      ]);
      expect((await r.experiences()).experiences[0]?.outcome).toEqual(p.outcome);
      // Similarity search works on the columns kept in clear.
      expect((await r.similar()).map((e) => e.outcome)).toEqual([p.outcome]);
    }
    // The same payloads of a tenant with encryption off are stored as written.
    await goalThroughEveryColumn(t.store, "plain");
    expect((await storedText("plain")).steps.join(" ")).toContain("123-45-6789");
  });

  it("sensitive mode seals only the fields the contract marks; all mode seals every payload column whole", async () => {
    const sens = await storedText("sens");
    // Not marked sensitive: errors, the plan's rationale and shape, a failed step's event.
    expect(sens.goals.join(" ")).toContain(note);
    expect(sens.steps.join(" ")).toContain(note);
    expect(sens.attempts.join(" ")).toContain(note);
    expect(sens.plans.join(" ")).toContain(note);
    expect(sens.plans.join(" ")).toContain('"records.fetch"');
    expect(sens.events.join(" ")).toContain(note);
    expect(sens.experiences.join(" ")).toContain('"triage"');
    // Marked sensitive: sealed in place, field by field.
    const [plan] = await raw("select spec from plans where tenant_id = 'sens'");
    const spec = plan?.spec as unknown as {
      steps: { input?: unknown; subGoal?: { input: unknown } }[];
    };
    expect(spec.steps[0]?.input).toEqual({ $sealed: expect.stringMatching(/^am1\.1\./) });
    expect(spec.steps[1]?.subGoal?.input).toEqual({ $sealed: expect.stringMatching(/^am1\.1\./) });

    const every = await storedText("every");
    for (const [table, rows] of Object.entries(every)) {
      for (const row of rows) expect(row, table).not.toContain(note);
    }
    const unsealed = await raw(
      `select 'goals' as t from goals where tenant_id = 'every' and (input->'$sealed' is null
         or output->'$sealed' is null or error->'$sealed' is null)
       union all select 'events' from goal_events where tenant_id = 'every' and data->'$sealed' is null
       union all select 'plans' from plans where tenant_id = 'every' and (spec->'$sealed' is null or rationale <> '')
       union all select 'steps' from steps where tenant_id = 'every' and (spec->'$sealed' is null
         or (output is not null and output <> 'null' and output->'$sealed' is null)
         or (error is not null and error <> 'null' and error->'$sealed' is null))
       union all select 'attempts' from step_attempts where tenant_id = 'every' and (
         (output is not null and output <> 'null' and output->'$sealed' is null)
         or (error is not null and error <> 'null' and error->'$sealed' is null))
       union all select 'experiences' from experiences where tenant_id = 'every' and outcome->'$sealed' is null`,
    );
    expect(unsealed).toEqual([]);
  });

  it("rotation keeps old payloads of every column readable and seals new ones with the new key", async () => {
    const before = await goalThroughEveryColumn(t.store, "bystander");
    expect(await rotateTenantKeys(t.store, "bystander", "ops/test")).toBe(2);
    const after = await goalThroughEveryColumn(t.store, "bystander");
    const [row] = await raw("select spec::text as spec from plans where id = ?", [after.planId]);
    expect(row?.spec).toMatch(/"am1\.2\./);
    for (const g of [before, after]) {
      const r = reads(t.store, "bystander", g.goal.id, g.planId);
      expect((await r.plan()).spec).toEqual(g.p.plan);
      expect((await r.steps())[0]?.output).toEqual(secret);
      expect((await r.attempts())[1]?.output).toEqual(secret);
      expect((await r.events()).map((e) => e.data)).toEqual([
        g.p.planned,
        g.p.succeeded,
        g.p.failed,
      ]);
    }
  });

  it("after an erasure no read of the tenant's payloads succeeds, in either mode, and other tenants are untouched", async () => {
    const goals = new Map<string, { goalId: string; planId: string }>();
    for (const tenantId of ["sens", "every", "bystander"]) {
      const { goal, planId } = await goalThroughEveryColumn(t.store, tenantId);
      goals.set(tenantId, { goalId: goal.id, planId });
    }
    // A step of each due for a retry: the erased tenant's is never claimed.
    const dueStep = async (tenantId: string) => {
      const tenant = t.store.tenant(tenantId);
      const { goal } = await tenant.goals.create({ kind: "triage", input: { text: secret } });
      const planId = `plan-${goal.id}`;
      await tenant.goals.update(
        goal.id,
        goal.version,
        { planId, status: "RUNNING" },
        {
          ctes: await tenant.plans.plannedWrites(
            {
              id: planId,
              goalId: goal.id,
              goalKind: "triage",
              strategy: "solo",
              outputStep: "a",
              spec: {},
            },
            [
              {
                stepId: "a",
                status: "RETRY_WAIT",
                attempts: 1,
                nextAttemptAt: new Date(Date.now() - 1000),
              },
            ],
            [],
          ),
        },
      );
      return planId;
    };
    const dueErased = await dueStep("every");
    const dueOther = await dueStep("bystander");
    // A goal of each waiting to be planned: the erased tenant's is never claimed.
    const { goal: pendingErased } = await t.store
      .tenant("every")
      .goals.create({ kind: "triage", input: { text: secret } });
    const { goal: pendingOther } = await t.store
      .tenant("bystander")
      .goals.create({ kind: "triage", input: { text: secret } });
    for (const tenantId of ["sens", "every"]) await eraseTenant(t.store, tenantId, "ops/test");

    for (const tenantId of ["sens", "every"]) {
      const { goalId, planId } = goals.get(tenantId)!;
      for (const [name, read] of Object.entries(reads(t.store, tenantId, goalId, planId))) {
        await expect(read(), `${tenantId} ${name}`).rejects.toMatchObject({
          code: Code.FailedPrecondition,
          message: expect.stringMatching(/erased|does not exist/),
        });
      }
    }
    const { goalId, planId } = goals.get("bystander")!;
    const r = reads(t.store, "bystander", goalId, planId);
    expect((await r.goal()).input).toEqual({ text: secret });
    expect((await r.steps())[0]?.output).toEqual(secret);
    expect((await r.similar()).length).toBeGreaterThan(0);

    const claimed = await t.store.work.claimGoals({
      owner: "test",
      statuses: ["PENDING"],
      limit: 1000,
    });
    expect(claimed.map((g) => g.id)).toContain(pendingOther.id);
    expect(claimed.map((g) => g.id)).not.toContain(pendingErased.id);
    const steps = await t.store.work.claimDueSteps({ owner: "test", limit: 1000 });
    expect(steps.map((x) => x.planId)).toContain(dueOther);
    expect(steps.map((x) => x.planId)).not.toContain(dueErased);
  });

  it("an erasure or a new mode in one store takes effect at once in another that cached the tenant's keys", async () => {
    const other = await openStore({
      databaseUrl: pg!.url,
      schema: t.schema,
      secrets,
      migrate: false,
    });
    try {
      for (const [id, mode] of [
        ["twin", "all"],
        ["later", "off"],
      ] as const) {
        await t.store.tenants.create({ id, displayName: id });
        await setTenantEncryption(t.store, id, mode, "ops/test");
      }
      const { goal } = await t.store
        .tenant("twin")
        .goals.create({ kind: "k", input: { text: secret } });
      // The other store hears changes (its feed opens on first use), then reads the goal,
      // caching twin's mode and data key, and later's mode.
      await other.tenant("later").goals.create({ kind: "k", input: { n: 1 } });
      await expect.poll(() => other.cipher.hearsChanges).toBe(true);
      expect((await other.tenant("twin").goals.get(goal.id)).input).toEqual({ text: secret });
      await other.tenant("later").goals.create({ kind: "k", input: { n: 2 } });

      await eraseTenant(t.store, "twin", "ops/test");
      await expect(other.tenant("twin").goals.get(goal.id)).rejects.toMatchObject({
        code: Code.FailedPrecondition,
      });
      await expect(
        other.tenant("twin").goals.create({ kind: "k", input: { text: secret } }),
      ).rejects.toMatchObject({ code: Code.FailedPrecondition });

      await setTenantEncryption(t.store, "later", "all", "ops/test");
      const { goal: sealed } = await other
        .tenant("later")
        .goals.create({ kind: "k", input: { text: secret } });
      const [row] = await raw("select input::text as input from goals where id = ?", [sealed.id]);
      expect(row?.input).toMatch(/^\{"\$sealed": "am1\.1\./);

      // Its listening connection lost, the other store listens again and hears the next change.
      const killed = await raw(
        "select pg_terminate_backend(pid) from pg_stat_activity where query like ? and pid <> pg_backend_pid()",
        [`listen "agentmesh_tenant_keys_${t.schema}"`],
      );
      expect(killed.length).toBe(2);
      await expect.poll(() => other.cipher.hearsChanges).toBe(false);
      await expect.poll(() => other.cipher.hearsChanges, { timeout: 15_000 }).toBe(true);
      expect((await other.tenant("later").goals.get(sealed.id)).input).toEqual({ text: secret });
      await eraseTenant(t.store, "later", "ops/test");
      await expect(other.tenant("later").goals.get(sealed.id)).rejects.toMatchObject({
        code: Code.FailedPrecondition,
      });
    } finally {
      await other.close();
    }
  });

  it("a store closed while its feed is still connecting leaves no connection behind", async () => {
    const applicationName = `enc-close-${t.schema}`;
    const s = await openStore({
      databaseUrl: pg!.url,
      schema: t.schema,
      secrets,
      migrate: false,
      applicationName,
    });
    const first = s.cipher.mode("plain").catch(() => undefined); // opens the feed
    await s.close();
    await first;
    // Long enough for a connection under way to be made (and, the store being closed, ended).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const [left] = await raw(
      "select count(*)::int as n from pg_stat_activity where application_name = ?",
      [applicationName],
    );
    expect(left?.n).toBe(0);
  });
});
