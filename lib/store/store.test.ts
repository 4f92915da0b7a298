import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type MeshError } from "../errors/mesh-error.js";
import { needPostgres, runId } from "../testing/infra.js";
import { newApiKey, parseApiKey, verifyApiKeySecret } from "./api-key-secret.js";
import { entities } from "./entities.js";
import { migrationNames } from "./migrations/index.js";
import type { Store } from "./store.js";
import { storeCounts } from "./store-metrics.js";
import { openTestStore, type TestStore } from "./testing.js";

const pg = await needPostgres();

async function codeOf(promise: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    return (err as MeshError).code;
  }
}

function codeOfSync(fn: () => unknown): Code | "ok" {
  try {
    fn();
    return "ok";
  } catch (err) {
    return (err as MeshError).code;
  }
}

describe.skipIf(!pg)("store on PostgreSQL", () => {
  let t: TestStore;
  let store: Store;

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: "acme", displayName: "Acme" });
    await store.tenants.create({ id: "beta", displayName: "Beta" });
  });
  afterAll(() => t?.cleanup());

  describe("migrations", () => {
    it("creates a column for every entity property and records the migration", async () => {
      expect(migrationNames).toEqual([
        "0001-initial-schema",
        "0002-audit-head",
        "0003-require-function",
        "0004-goal-submitter",
        "0005-tenant-operations",
        "0006-tenant-data-keys",
        "0007-unlogged-rate-buckets",
        "0008-tenant-retention",
        "0009-experience-signatures",
        "0010-stream-leases",
        "0011-goal-submitter-roles",
        "0012-strategy-recent-stats",
        "0013-playbook-notify",
        "0014-agent-probation",
        "0015-due-steps-index",
        "0016-goal-index-entries",
      ]);
      expect(await store.migrationStatus()).toEqual({
        executed: [...migrationNames],
        pending: [],
      });
      const rows = await store.orm.em
        .fork()
        .execute<{ table_name: string; column_name: string }[]>(
          "select table_name, column_name from information_schema.columns where table_schema = ?",
          [t.schema],
        );
      const columns = new Set(rows.map((r) => `${r.table_name}.${r.column_name}`));
      const metadata = store.orm.getMetadata();
      for (const schema of entities) {
        const meta = metadata.get(schema.meta.className);
        for (const prop of Object.values(meta.properties)) {
          for (const field of prop.fieldNames) {
            expect(columns, `${meta.tableName}.${field}`).toContain(`${meta.tableName}.${field}`);
          }
        }
      }
    });

    it("lets replicas that start together apply each migration once", async () => {
      const schema = runId("s");
      const [a, b] = await Promise.all([
        openTestStore({ databaseUrl: pg!.url, schema }),
        openTestStore({ databaseUrl: pg!.url, schema }),
      ]);
      try {
        expect((await a.store.migrationStatus()).executed).toEqual(migrationNames);
      } finally {
        await b.store.close();
        await a.cleanup();
      }
    });

    it("migrates down to nothing and up again", async () => {
      const other = await openTestStore({ databaseUrl: pg!.url });
      try {
        const tables = async () =>
          (
            await other.store.orm.em
              .fork()
              .execute<{ n: string }[]>(
                "select count(*) as n from information_schema.tables where table_schema = ?",
                [other.schema],
              )
          )[0]?.n;
        const functions = async () =>
          (
            await other.store.orm.em
              .fork()
              .execute<{ name: string }[]>(
                "select routine_name as name from information_schema.routines where routine_schema = ? order by 1",
                [other.schema],
              )
          ).map((r) => r.name);
        expect(Number(await tables())).toBe(22); // 21 tables + the migrations table
        expect(await functions()).toEqual([
          "agentmesh_require",
          "audit_events_append_only",
          "playbooks_notify",
          "stream_lease_open",
        ]);
        expect(await other.store.migrateDown()).toEqual([...migrationNames].reverse());
        expect(Number(await tables())).toBe(1);
        expect(await functions()).toEqual([]);
        expect((await other.store.migrationStatus()).pending).toEqual(migrationNames);
        expect(await other.store.migrate()).toEqual(migrationNames);
        expect(Number(await tables())).toBe(22);
        expect(await functions()).toEqual([
          "agentmesh_require",
          "audit_events_append_only",
          "playbooks_notify",
          "stream_lease_open",
        ]);
        expect(await other.store.migrate()).toEqual([]);
      } finally {
        await other.cleanup();
      }
    });
  });

  describe("tenant scoping", () => {
    it("requires a tenant id for tenant data, at the type level and at run time", () => {
      // @ts-expect-error tenant data has no unscoped repository
      expect(store.goals).toBeUndefined();
      // @ts-expect-error the tenant id is a required argument
      expect(codeOfSync(() => store.tenant())).toBe(Code.InvalidArgument);
      expect(codeOfSync(() => store.tenant(""))).toBe(Code.InvalidArgument);
      expect(codeOfSync(() => store.tenant("Acme Corp"))).toBe(Code.InvalidArgument);
      expect(store.tenant("acme").goals.tenantId).toBe("acme");
    });

    it("answers NOT_FOUND for an unknown tenant and hides other tenants' rows", async () => {
      expect(await codeOf(store.tenant("nobody").goals.create({ kind: "k" }))).toBe(Code.NotFound);
      expect(await codeOf(store.tenants.get("nobody"))).toBe(Code.NotFound);
      const { goal } = await store.tenant("acme").goals.create({ kind: "scoped" });
      expect(await codeOf(store.tenant("beta").goals.get(goal.id))).toBe(Code.NotFound);
      expect(
        await codeOf(
          store.tenant("beta").goals.update(goal.id, goal.version, { status: "FAILED" }),
        ),
      ).toBe(Code.NotFound);
      expect(
        await codeOf(store.tenant("beta").events.append(goal.id, { type: "x", data: 1 })),
      ).toBe(Code.NotFound);
      const page = await store.tenant("beta").goals.list({ kind: "scoped" });
      expect(page.goals).toEqual([]);
      expect((await store.tenant("acme").goals.get(goal.id)).kind).toBe("scoped");
    });
  });

  describe("goals", () => {
    it("creates a goal once per idempotency key, even concurrently", async () => {
      const goals = store.tenant("acme").goals;
      const results = await Promise.all(
        Array.from({ length: 12 }, () =>
          goals.create({ kind: "summarize", input: { text: "hi" }, idempotencyKey: "key-1" }),
        ),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.goal.id)).size).toBe(1);
      // Another tenant may use the same key.
      const other = await store
        .tenant("beta")
        .goals.create({ kind: "summarize", idempotencyKey: "key-1" });
      expect(other.created).toBe(true);
      expect(other.goal.id).not.toBe(results[0]?.goal.id);
    });

    it("keeps the submitter's roles, in a transaction as outside one", async () => {
      const roles = ["goals.write", "tools:shell"];
      const direct = await store
        .tenant("acme")
        .goals.create({ kind: "roles", submittedBy: "acme/key:k1", submitterRoles: roles });
      const inTx = await store.transaction((tx) =>
        tx
          .tenant("acme")
          .goals.create({ kind: "roles", submittedBy: "acme/key:k1", submitterRoles: ["one"] }),
      );
      const none = await store.tenant("acme").goals.create({ kind: "roles" });
      expect((await store.tenant("acme").goals.get(direct.goal.id)).submitterRoles).toEqual(roles);
      expect((await store.tenant("acme").goals.get(inTx.goal.id)).submitterRoles).toEqual(["one"]);
      expect((await store.tenant("acme").goals.get(none.goal.id)).submitterRoles).toBeNull();
    });

    it("rejects a stale version with ABORTED and applies exactly one of two racing updates", async () => {
      const goals = store.tenant("acme").goals;
      const { goal } = await goals.create({ kind: "race", labels: { team: "a" } });
      expect(goal.version).toBe(1);
      const outcomes = await Promise.all([
        codeOf(goals.update(goal.id, 1, { status: "PLANNING" })),
        codeOf(goals.update(goal.id, 1, { status: "CANCELLED" })),
      ]);
      expect(outcomes.sort()).toEqual([Code.Aborted, "ok"].sort());
      const current = await goals.get(goal.id);
      expect(current.version).toBe(2);
      const done = await goals.update(goal.id, 2, {
        status: "SUCCEEDED",
        output: { summary: "ok" },
      });
      expect(done.finishedAt).toBeInstanceOf(Date);
      expect(done.output).toEqual({ summary: "ok" });
      expect(await codeOf(goals.update("missing", 1, { status: "FAILED" }))).toBe(Code.NotFound);
      expect(
        // @ts-expect-error not a goal status
        await codeOf(goals.update(goal.id, 3, { status: "DONE" })),
      ).toBe(Code.InvalidArgument);
    });

    it("lists newest first with keyset pages and filters", async () => {
      const goals = store.tenant("beta").goals;
      const created: { id: string; at: number }[] = [];
      for (let i = 0; i < 7; i++) {
        const { goal } = await goals.create({
          kind: "paged",
          status: i % 2 ? "RUNNING" : "PENDING",
        });
        created.push({ id: goal.id, at: goal.createdAt.getTime() });
      }
      // Newest first; goals created in the same millisecond by id, descending.
      const newestFirst = created
        .sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
        .map((g) => g.id);
      const seen: string[] = [];
      let token = "";
      let pages = 0;
      do {
        const page = await goals.list({ kind: "paged", pageSize: 3, pageToken: token });
        seen.push(...page.goals.map((g) => g.id));
        token = page.nextPageToken;
        pages++;
      } while (token);
      expect(pages).toBe(3);
      expect(seen).toEqual(newestFirst);
      const running = await goals.list({ kind: "paged", statuses: ["RUNNING"] });
      expect(running.goals.map((g) => g.status)).toEqual(["RUNNING", "RUNNING", "RUNNING"]);
      expect(await codeOf(goals.list({ pageToken: "garbage" }))).toBe(Code.InvalidArgument);
    });

    it("pages goals by a byte budget as well as by count, always at least one", async () => {
      const goals = store.tenant("beta").goals;
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const input = { blob: "x".repeat(i === 2 ? 50_000 : 10_000) };
        ids.unshift((await goals.create({ kind: "budget", input })).goal.id);
      }
      const pages: string[][] = [];
      let token = "";
      do {
        const page = await goals.list({ kind: "budget", maxBytes: 25_000, pageToken: token });
        pages.push(page.goals.map((g) => g.id));
        token = page.nextPageToken;
      } while (token);
      // Newest first: 10 k + 10 k fit; the 50 k goal alone (a page is never empty); 10 k + 10 k.
      expect(pages.map((p) => p.length)).toEqual([2, 1, 2]);
      expect(pages.flat().sort()).toEqual([...ids].sort());
      expect((await goals.list({ kind: "budget" })).goals).toHaveLength(5);
    });

    it("links sub-goals to their parent in the same tenant only", async () => {
      const acme = store.tenant("acme").goals;
      const { goal: parent } = await acme.create({ kind: "parent" });
      const { goal: child } = await acme.create({
        kind: "child",
        parentGoalId: parent.id,
        parentStepId: "s1",
      });
      expect(child.parentGoalId).toBe(parent.id);
      expect((await acme.list({ parentGoalId: parent.id })).goals.map((g) => g.id)).toEqual([
        child.id,
      ]);
      expect(
        await codeOf(store.tenant("beta").goals.create({ kind: "x", parentGoalId: parent.id })),
      ).toBe(Code.NotFound);
    });

    it("rejects bad input with INVALID_ARGUMENT", async () => {
      const goals = store.tenant("acme").goals;
      expect(await codeOf(goals.create({ kind: "" }))).toBe(Code.InvalidArgument);
      expect(await codeOf(goals.create({ kind: "k", priority: 1.5 }))).toBe(Code.InvalidArgument);
      expect(await codeOf(goals.create({ kind: "k", input: { t: "a\u0000b" } }))).toBe(
        Code.InvalidArgument,
      );
    });

    it("rolls a transaction back when its callback throws", async () => {
      const boom = new Error("boom");
      await expect(
        store.transaction(async (tx) => {
          await tx.tenant("acme").goals.create({ kind: "tx", idempotencyKey: "tx-1" });
          throw boom;
        }),
      ).rejects.toThrow();
      const page = await store.tenant("acme").goals.list({ kind: "tx" });
      expect(page.goals).toEqual([]);
    });
  });

  describe("goal events", () => {
    it("numbers concurrent appends 1..n without gaps or duplicates", async () => {
      const acme = store.tenant("acme");
      const { goal } = await acme.goals.create({ kind: "events" });
      const appended = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          acme.events.append(goal.id, { type: "tick", data: { i } }),
        ),
      );
      const sequences = appended.map((e) => e.sequence).sort((a, b) => a - b);
      expect(sequences).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      const tail = await acme.events.list(goal.id, { afterSequence: 35 });
      expect(tail.map((e) => e.sequence)).toEqual([36, 37, 38, 39, 40]);
      expect((await acme.goals.get(goal.id)).lastEventSeq).toBe(40);
      expect(await codeOf(acme.events.append("missing", { type: "x", data: null }))).toBe(
        Code.NotFound,
      );
    });

    it("gives the number of a rolled-back append back", async () => {
      const acme = store.tenant("acme");
      const { goal } = await acme.goals.create({ kind: "events" });
      await acme.events.append(goal.id, { type: "a", data: 1 });
      await expect(
        store.transaction(async (tx) => {
          await tx.tenant("acme").events.append(goal.id, { type: "b", data: 2 });
          throw new Error("abort");
        }),
      ).rejects.toThrow();
      const next = await acme.events.append(goal.id, { type: "c", data: 3 });
      expect(next.sequence).toBe(2);
    });

    it("writes a goal's events with its creation and with a versioned update, or not at all", async () => {
      const acme = store.tenant("acme");
      const { goal } = await acme.goals.create({ kind: "events" }, [
        { type: "submitted", data: { kind: "events" } },
      ]);
      expect(goal.lastEventSeq).toBe(1);
      const updated = await acme.goals.update(
        goal.id,
        goal.version,
        { status: "RUNNING" },
        {
          events: [
            { type: "planned", data: { n: 1 } },
            { type: "stepDispatched", data: null },
          ],
          afterEventSeq: 1,
        },
      );
      expect(updated.lastEventSeq).toBe(3);
      // A stale version or event sequence changes nothing: neither the row nor the events.
      expect(
        await codeOf(
          acme.goals.update(
            goal.id,
            goal.version,
            { status: "FAILED" },
            { events: [{ type: "finished", data: {} }] },
          ),
        ),
      ).toBe(Code.Aborted);
      expect(
        await codeOf(
          acme.goals.update(
            goal.id,
            updated.version,
            { status: "FAILED" },
            { events: [{ type: "finished", data: {} }], afterEventSeq: 1 },
          ),
        ),
      ).toBe(Code.Aborted);
      const more = await acme.events.appendMany(goal.id, [
        { type: "a", data: 1 },
        { type: "b", data: 2 },
      ]);
      expect(more.map((e) => [e.sequence, e.type, e.data])).toEqual([
        [4, "a", 1],
        [5, "b", 2],
      ]);
      const events = await acme.events.list(goal.id);
      expect(events.map((e) => [e.sequence, e.type])).toEqual([
        [1, "submitted"],
        [2, "planned"],
        [3, "stepDispatched"],
        [4, "a"],
        [5, "b"],
      ]);
      expect(events[2]!.data).toBeNull();
      const again = await acme.goals.create({ kind: "events", idempotencyKey: "ev-1" }, [
        { type: "submitted", data: {} },
      ]);
      const repeat = await acme.goals.create({ kind: "events", idempotencyKey: "ev-1" }, [
        { type: "submitted", data: {} },
      ]);
      expect(repeat.created).toBe(false);
      expect((await acme.events.list(again.goal.id)).length).toBe(1);
    });

    it("audits a created goal in its insert, once, on the same chain as other appends", async () => {
      const acme = store.tenant("acme");
      const before = (await store.audit.verify()).rows;
      const audit = (i: number) => ({
        actor: "acme/alice",
        action: "goal.submitted",
        resource: `goal/${i}`,
        tenantId: "acme",
        details: { i },
      });
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          i % 3 === 0
            ? store.audit.append(audit(i))
            : acme.goals.create({ kind: "audited", idempotencyKey: `au-${i % 12}` }, [], audit(i)),
        ),
      );
      // 8 plain appends (i % 3 = 0); 16 creates over 8 distinct keys: 8 goals audited.
      const verdict = await store.audit.verify();
      expect(verdict).toMatchObject({ ok: true, rows: before + 8 + 8 });
    });
  });

  describe("goals created together (group commit)", () => {
    const audit = (tenantId: string, id: string) => ({
      actor: `${tenantId}/alice`,
      action: "goal.submitted",
      resource: `goal/${id}`,
      tenantId,
      details: { id },
    });
    const prepare = (tenantId: string, id: string, key?: string) =>
      store.tenant(tenantId).goals.prepare(
        { id, kind: "together", ...(key ? { idempotencyKey: key } : {}) },
        [
          { type: "submitted", data: { id } },
          { type: "planned", data: { id, n: 2 } },
        ],
        audit(tenantId, id),
      );

    it("creates goals of several tenants in one statement; a repeated key creates nothing", async () => {
      const old = await store
        .tenant("acme")
        .goals.create({ kind: "together", idempotencyKey: "t-old" });
      const rows = (await store.audit.verify()).rows;
      const creations = await Promise.all([
        prepare("acme", "t1"),
        prepare("beta", "t2"),
        prepare("acme", "t3", "t-old"),
        prepare("acme", "t4", "t-new"),
        prepare("acme", "t5", "t-new"),
        prepare("beta", "t6", "t-new"),
      ]);
      const before = storeCounts.statements;
      const out = await store.createGoals(creations);
      // One statement, and one lookup for each goal whose key was taken.
      expect(storeCounts.statements - before).toBe(1 + 2);
      expect(out.map((o) => (o instanceof Error ? o.code : [o.goal.id, o.created]))).toEqual([
        ["t1", true],
        ["t2", true],
        [old.goal.id, false],
        ["t4", true],
        ["t4", false],
        ["t6", true],
      ]);
      for (const [tenantId, id] of [
        ["acme", "t1"],
        ["beta", "t2"],
        ["acme", "t4"],
        ["beta", "t6"],
      ] as const) {
        const events = await store.tenant(tenantId).events.list(id);
        expect(events.map((e) => [e.sequence, e.type, e.data])).toEqual([
          [1, "submitted", { id }],
          [2, "planned", { id, n: 2 }],
        ]);
        expect((await store.tenant(tenantId).goals.get(id)).lastEventSeq).toBe(2);
      }
      expect(await store.tenant("acme").events.list("t3")).toEqual([]);
      expect(await store.tenant("acme").events.list("t5")).toEqual([]);
      // Audited in the items' order, only the goals created.
      const audited = await store.audit.list({ afterSeq: (await store.audit.head()).seq - 4 });
      expect(audited.map((a) => a.resource)).toEqual(["goal/t1", "goal/t2", "goal/t4", "goal/t6"]);
      expect(await store.audit.verify()).toMatchObject({ ok: true, rows: rows + 4 });
    });

    it("fails only the goal whose own write fails", async () => {
      await store.tenant("acme").goals.create({ id: "taken", kind: "together" });
      const out = await store.createGoals(
        await Promise.all([prepare("acme", "f1"), prepare("acme", "taken"), prepare("beta", "f2")]),
      );
      expect(out.map((o) => (o instanceof Error ? o.code : o.created))).toEqual([
        true,
        Code.AlreadyExists,
        true,
      ]);
      expect(await store.tenant("acme").events.list("taken")).toEqual([]);
      expect((await store.audit.verify()).ok).toBe(true);
    });

    it("keeps one valid audit chain under concurrent batches and appends", async () => {
      const rows = (await store.audit.verify()).rows;
      await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          if (i % 3 === 0) return store.audit.append(audit("acme", `c${i}`));
          const batch = await Promise.all(
            Array.from({ length: 5 }, (_, j) => prepare(j % 2 ? "acme" : "beta", `c${i}-${j}`)),
          );
          return store.createGoals(batch);
        }),
      );
      expect(await store.audit.verify()).toMatchObject({ ok: true, rows: rows + 4 + 8 * 5 });
    });
  });

  describe("claiming work with SKIP LOCKED", () => {
    it("never gives one pending goal to two concurrent workers", async () => {
      const goals = store.tenant("beta").goals;
      const ids = new Set<string>();
      await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          const { goal } = await goals.create({ kind: "claim", priority: i % 3 });
          ids.add(goal.id);
        }),
      );
      const claimed: string[] = [];
      await Promise.all(
        Array.from({ length: 6 }, async (_, w) => {
          for (;;) {
            const batch = await store.work.claimGoals({ owner: `worker-${w}`, limit: 4 });
            const mine = batch.filter((g) => ids.has(g.id));
            if (batch.length === 0) break;
            claimed.push(...mine.map((g) => g.id));
            for (const g of mine) expect(g.leaseOwner).toBe(`worker-${w}`);
          }
        }),
      );
      const mineClaimed = claimed.filter((id) => ids.has(id));
      expect(mineClaimed).toHaveLength(60);
      expect(new Set(mineClaimed).size).toBe(60);
      // Leased goals are not due again until their lease runs out.
      expect((await store.work.claimGoals({ owner: "late" })).filter((g) => ids.has(g.id))).toEqual(
        [],
      );
    });

    it("claims only due retry steps, each once", async () => {
      const acme = store.tenant("acme");
      const { goal } = await acme.goals.create({ kind: "retry" });
      const stepIds = Array.from({ length: 20 }, (_, i) => `s${i}`);
      const plan = { id: `plan-${goal.id}`, goalId: goal.id, goalKind: "retry", strategy: "solo" };
      const past = new Date(Date.now() - 1000);
      const future = new Date(Date.now() + 60_000);
      await acme.goals.update(
        goal.id,
        goal.version,
        { planId: plan.id, status: "RUNNING" },
        {
          ctes: await acme.plans.plannedWrites(
            { ...plan, outputStep: "s0", spec: {} },
            stepIds.map((stepId, i) => ({
              stepId,
              capability: "c",
              status: "RETRY_WAIT",
              nextAttemptAt: i < 15 ? past : future,
            })),
            [],
          ),
        },
      );
      const claimed: string[] = [];
      await Promise.all(
        Array.from({ length: 5 }, async (_, w) => {
          for (;;) {
            const batch = await store.work.claimDueSteps({ owner: `w${w}`, limit: 2 });
            if (batch.length === 0) break;
            claimed.push(...batch.filter((s) => s.planId === plan.id).map((s) => s.stepId));
          }
        }),
      );
      expect(claimed.sort()).toEqual(stepIds.slice(0, 15).sort());
    });
  });

  describe("agents", () => {
    it("upserts by (name, instance), finds live agents by capability and expires leases once", async () => {
      const soon = new Date(Date.now() + 60_000);
      const first = await store.agents.upsert({
        name: "text-agent",
        instanceId: "i-1",
        card: { name: "text-agent" },
        spiffeId: "spiffe://agentmesh.local/ns/agentmesh/sa/agent-text",
        capabilities: ["text.summarize", "text.translate"],
        leaseExpiresAt: soon,
      });
      const again = await store.agents.upsert({
        name: "text-agent",
        instanceId: "i-1",
        version: "1.1.0",
        card: { name: "text-agent", version: "1.1.0" },
        spiffeId: "spiffe://agentmesh.local/ns/agentmesh/sa/agent-text",
        capabilities: ["text.summarize"],
        leaseExpiresAt: soon,
      });
      expect([first.created, again.created]).toEqual([true, false]);
      expect(again.agent.id).toBe(first.agent.id);
      expect(again.agent.registeredAt).toEqual(first.agent.registeredAt);
      const other = await store.agents.upsert({
        name: "text-agent",
        instanceId: "i-2",
        card: {},
        spiffeId: "spiffe://agentmesh.local/ns/agentmesh/sa/agent-text",
        capabilities: ["text.summarize"],
        leaseExpiresAt: soon,
      });
      await store.learning.recordReliabilityOutcome({
        agentId: other.agent.id,
        capability: "text.summarize",
        success: true,
      });
      // The score is copied onto the agent's row in the same statement.
      expect((await store.agents.get(other.agent.id)).reliability).toEqual({
        "text.summarize": 1,
      });
      const live = await store.agents.findLive("text.summarize");
      expect(live.map((a) => a.id)).toEqual([other.agent.id, first.agent.id]);
      expect(await store.agents.findLive("text.translate")).toEqual([]);

      await store.agents.heartbeat(first.agent.id, {
        leaseExpiresAt: new Date(Date.now() - 1),
        inFlight: 2,
      });
      await store.agents.heartbeat(other.agent.id, { leaseExpiresAt: new Date(Date.now() - 1) });
      const sweeps = await Promise.all([
        store.agents.expireLeases(),
        store.agents.expireLeases(),
        store.agents.expireLeases(),
      ]);
      const expired = sweeps.flat().map((a) => a.id);
      expect(expired.sort()).toEqual([first.agent.id, other.agent.id].sort());
      expect((await store.agents.get(first.agent.id)).state).toBe("EXPIRED");
      expect(await store.agents.findLive("text.summarize")).toEqual([]);
      expect(await codeOf(store.agents.heartbeat("nope", { leaseExpiresAt: soon }))).toBe(
        Code.NotFound,
      );

      await store.agents.putTool({
        name: "http.fetch",
        agentId: first.agent.id,
        spec: { name: "http.fetch" },
      });
      expect(
        (await store.agents.listTools({ agentId: first.agent.id })).map((t) => t.name),
      ).toEqual(["http.fetch"]);
    });
  });

  describe("learning, playbooks, flags and keys", () => {
    it("counts concurrent strategy outcomes atomically", async () => {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          store.learning.recordStrategyOutcome({
            bucket: "tenant=acme/kind=k",
            strategy: "solo",
            tenantId: "acme",
            goalKind: "k",
            success: i % 4 !== 0,
            latencyMs: 10,
            cost: 1,
          }),
        ),
      );
      const [stats] = await store.learning.strategyStats({ tenantId: "acme", goalKind: "k" });
      expect(stats).toMatchObject({ successes: 15, failures: 5, outcomes: 20, latencySumMs: 200 });
    });

    it("decays stored counts by their age with a half-life in the upsert", async () => {
      const outcome = (success: boolean, at?: Date) =>
        store.learning.recordStrategyOutcome({
          bucket: "tenant=acme/kind=decay",
          strategy: "solo",
          success,
          latencyMs: 1,
          decayHalfLifeMs: 60_000,
          ...(at ? { at } : {}),
        });
      const first = await outcome(true);
      // One half-life after the row was written: the old success counts half.
      const later = await outcome(false, new Date(first.updatedAt.getTime() + 60_000));
      expect(later.successes).toBeCloseTo(0.5, 6);
      expect(later.failures).toBeCloseTo(1, 6);
      // Far in the future the weight clamps near 0 rather than underflowing.
      const far = await outcome(true, new Date(later.updatedAt.getTime() + 1e12));
      expect(far.successes).toBeCloseTo(1, 6);
      expect(far.failures).toBeCloseTo(0, 6);
    });

    it("keeps one current parameter version and locks versions optimistically", async () => {
      const v1 = await store.learning.createParameters({
        version: "v1",
        state: "CURRENT",
        params: { a: 1 },
      });
      expect(
        await codeOf(
          store.learning.createParameters({ version: "v2", state: "CURRENT", params: {} }),
        ),
      ).toBe(Code.FailedPrecondition);
      expect(
        await codeOf(
          store.learning.createParameters({ version: "v1", state: "RETIRED", params: {} }),
        ),
      ).toBe(Code.AlreadyExists);
      await store.learning.createParameters({
        version: "v2",
        state: "CANARY",
        params: {},
        trafficFraction: 0.1,
      });
      await store.transaction(async (tx) => {
        await tx.learning.updateParameters("v1", v1.revision, { state: "RETIRED" });
        const v2 = await tx.learning.getParameters("v2");
        await tx.learning.updateParameters("v2", v2.revision, {
          state: "CURRENT",
          trafficFraction: 1,
        });
      });
      expect((await store.learning.activeParameters()).current?.version).toBe("v2");
      expect(await codeOf(store.learning.updateParameters("v1", v1.revision, { note: "x" }))).toBe(
        Code.Aborted,
      );
    });

    it("versions playbooks and resolves flags by specificity", async () => {
      const playbooks = store.tenant("acme").playbooks;
      const p1 = await playbooks.put("summarize", { goalKind: "summarize" });
      const p2 = await playbooks.put(
        "summarize",
        { goalKind: "summarize", description: "v2" },
        {
          expectedVersion: 1,
        },
      );
      expect([p1.version, p2.version]).toEqual([1, 2]);
      expect(await codeOf(playbooks.put("summarize", {}, { expectedVersion: 1 }))).toBe(
        Code.Aborted,
      );
      expect(await codeOf(playbooks.put("summarize", {}, { expectedVersion: 0 }))).toBe(
        Code.Aborted,
      );
      expect(await codeOf(store.tenant("beta").playbooks.get("summarize"))).toBe(Code.NotFound);
      await playbooks.delete("summarize");
      expect(await codeOf(playbooks.delete("summarize"))).toBe(Code.NotFound);

      await store.flags.set({ key: "selector", value: "thompson" });
      await store.flags.set({ key: "selector", value: "ucb1", tenantId: "acme" });
      await store.flags.set({ key: "selector", value: "fixed", tenantId: "acme", goalKind: "k" });
      expect((await store.flags.resolve("selector", { tenantId: "beta" }))?.value).toBe("thompson");
      expect((await store.flags.resolve("selector", { tenantId: "acme" }))?.value).toBe("ucb1");
      expect(
        (await store.flags.resolve("selector", { tenantId: "acme", goalKind: "k" }))?.value,
      ).toBe("fixed");
      expect(await store.flags.resolve("missing")).toBeUndefined();
    });

    it("records experiences once per goal", async () => {
      const exp = store.tenant("acme").experiences;
      const input = {
        goalId: "g-exp-1",
        goalKind: "k",
        bucket: "b",
        strategy: "solo",
        success: true,
        latencyMs: 12.5,
        features: [0.25, -1, 3.5],
        outcome: { goalId: "g-exp-1" },
      };
      const first = await exp.record(input);
      const second = await exp.record(input);
      expect([first.recorded, second.recorded]).toEqual([true, false]);
      expect(first.experience.features).toEqual([0.25, -1, 3.5]);
      expect((await exp.list({ goalKind: "k" })).experiences).toHaveLength(1);
      expect(await store.tenant("beta").experiences.list()).toEqual({
        experiences: [],
        nextPageToken: "",
      });
      expect(
        (await store.learning.experiencesSince(new Date(0))).some((e) => e.goalId === "g-exp-1"),
      ).toBe(true);
    });

    it("stores API keys hashed and finds them by key id", async () => {
      const { keyId, secret, secretHash } = newApiKey();
      expect(parseApiKey(secret)?.keyId).toBe(keyId);
      await store
        .tenant("acme")
        .apiKeys.create({ keyId, secretHash, name: "ci", roles: ["goals.write"] });
      const found = await store.tenants.findApiKey(keyId);
      expect(found).toMatchObject({ tenantId: "acme", roles: ["goals.write"], revokedAt: null });
      expect(verifyApiKeySecret(secret, found!.secretHash)).toBe(true);
      expect(verifyApiKeySecret(`${secret}x`, found!.secretHash)).toBe(false);
      expect(JSON.stringify(found)).not.toContain(secret);
      expect(
        await codeOf(store.tenant("acme").apiKeys.create({ keyId, secretHash, name: "dup" })),
      ).toBe(Code.AlreadyExists);
      expect(await codeOf(store.tenant("beta").apiKeys.revoke(keyId))).toBe(Code.NotFound);
      expect((await store.tenant("acme").apiKeys.revoke(keyId)).revokedAt).toBeInstanceOf(Date);
    });
  });
});
