/**
 * Retention and region pinning against a real PostgreSQL: finished goals and
 * experiences past a tenant's retention are purged in batches (sub-goals
 * before their parents), with metrics; recent and running goals, other
 * tenants and the audit log stay; a tenant pinned to another region is refused.
 */
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "../lib/errors/mesh-error.js";
import { adminActionEvent } from "../lib/store/audit-log.js";
import { setTenantRetention, startRetention } from "../lib/store/retention.js";
import { openTestStore, type TestStore } from "../lib/store/testing.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh } from "../lib/testing/mesh.js";

const pg = await needPostgres();
const nats = await needNats();
const exec = promisify(execFile);
const day = 86_400_000;

describe.skipIf(!pg)("retention", () => {
  let t: TestStore;
  const sql = (text: string, params: unknown[] = []) =>
    t.store.orm.em.fork().execute<Record<string, unknown>[]>(text, params);
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    for (const id of ["acme", "beta"]) await t.store.tenants.create({ id, displayName: id });
  });
  afterAll(() => t?.cleanup());

  /** A goal finished `ageDays` ago (undefined: still running), with an event. */
  async function goal(tenantId: string, ageDays: number | undefined, parentGoalId?: string) {
    const goals = t.store.tenant(tenantId).goals;
    const { goal: g } = await goals.create(
      { kind: "k", input: {}, ...(parentGoalId ? { parentGoalId } : {}) },
      [{ type: "submitted", data: {} }],
    );
    if (ageDays !== undefined) {
      await sql("update goals set status = 'SUCCEEDED', finished_at = ? where id = ?", [
        new Date(Date.now() - ageDays * day),
        g.id,
      ]);
      await sql(
        `insert into experiences (goal_id, tenant_id, goal_kind, bucket, strategy, success, latency_ms, outcome, created_at)
         values (?, ?, 'k', 'b', 's', true, 1, '{}', ?)`,
        [g.id, tenantId, new Date(Date.now() - ageDays * day)],
      );
    }
    return g.id;
  }

  it("purges finished goals and experiences past the tenant's retention in batches, keeping the rest and the audit log", async () => {
    await setTenantRetention(t.store, "acme", { days: 30 }, "ops/test");
    const parent = await goal("acme", 40);
    const child = await goal("acme", 41, parent);
    const old = await Promise.all([goal("acme", 45), goal("acme", 50), goal("acme", 31)]);
    const recent = await goal("acme", 5);
    const running = await goal("acme", undefined);
    const betaOld = await goal("beta", 400);
    await t.store.audit.append(
      adminActionEvent({
        actor: "ops/test",
        what: "x",
        resource: `goal/${old[0]}`,
        tenantId: "acme",
      }),
    );
    const auditBefore = (await t.store.audit.list({ limit: 1000 })).length;

    const registry = new Registry();
    const retention = startRetention({ store: t.store, batch: 2, registry, intervalMs: 3_600_000 });
    try {
      const run = await retention.runOnce();
      expect(run).toMatchObject({ goals: 5, experiences: 5 });
      expect(run.batches).toBeGreaterThan(3);
    } finally {
      await retention.close();
    }
    const left = (await sql("select id from goals where tenant_id = 'acme'")).map((r) => r.id);
    expect(left.sort()).toEqual([recent, running].sort());
    for (const id of [parent, child, ...old]) {
      expect(await sql("select 1 from goal_events where goal_id = ?", [id])).toEqual([]);
    }
    expect(await sql("select goal_id from experiences where tenant_id = 'acme'")).toEqual([
      { goal_id: recent },
    ]);
    expect((await t.store.tenant("beta").goals.get(betaOld)).id).toBe(betaOld);
    expect((await t.store.audit.list({ limit: 1000 })).length).toBe(auditBefore);
    expect((await t.store.audit.verify()).ok).toBe(true);
    const metric = await registry.getSingleMetricAsString("agentmesh_retention_purged_total");
    expect(metric).toContain('agentmesh_retention_purged_total{kind="goals"} 5');
    expect(metric).toContain('agentmesh_retention_purged_total{kind="experiences"} 5');
  });

  it("refuses a tenant pinned to another region than this deployment's, set from the command line", async () => {
    const home = mkdtempSync(join(tmpdir(), "retention-cli-"));
    const { stdout } = await exec(
      "node",
      [
        "bin/agentmesh.js",
        "tenants",
        "retention",
        "acme",
        "30",
        "--region",
        "eu-1",
        "--schema",
        t.schema,
      ],
      {
        env: { ...process.env, DATABASE_URL: pg!.url, AGENTMESH_HOME: home, LOG_LEVEL: "silent" },
        timeout: 60_000,
      },
    );
    expect(JSON.parse(stdout)).toEqual({ tenant: "acme", retentionDays: 30, region: "eu-1" });
    expect(await t.store.enforceRegion("us-1")).toEqual([{ id: "acme", region: "eu-1" }]);
    expect(() => t.store.tenant("acme")).toThrow(/pinned to region eu-1/);
    try {
      t.store.tenant("acme");
    } catch (err) {
      expect(err).toMatchObject({ code: Code.FailedPrecondition });
    }
    expect(t.store.tenant("beta").tenantId).toBe("beta");
    expect(await t.store.enforceRegion("eu-1")).toEqual([]);
    expect(t.store.tenant("acme").tenantId).toBe("acme");
    const audit = await t.store.audit.list({ limit: 1000 });
    expect(audit.map((a) => a.action)).toContain("admin.tenant.retention_set");
  });
});

describe.skipIf(!pg || !nats)("region pinning in a running mesh", () => {
  it("a process with AGENTMESH_REGION refuses a tenant pinned elsewhere, checked with every retention run", async () => {
    process.env.AGENTMESH_REGION = "us-1";
    process.env.AGENTMESH_RETENTION_INTERVAL_MS = "200";
    const mesh = await startTestMesh({ databaseUrl: pg!.url, natsUrl: nats!.url, components: [] });
    try {
      const { store } = mesh.runtime;
      expect(store.tenant("acme").tenantId).toBe("acme");
      await store.tenants.setRetention("acme", { region: "eu-1" });
      await expect
        .poll(
          () => {
            try {
              store.tenant("acme");
              return "served";
            } catch (err) {
              return (err as { code?: number }).code === Code.FailedPrecondition
                ? "refused"
                : String(err);
            }
          },
          { timeout: 10_000 },
        )
        .toBe("refused");
    } finally {
      delete process.env.AGENTMESH_REGION;
      delete process.env.AGENTMESH_RETENTION_INTERVAL_MS;
      await mesh.stop();
    }
  });
});
