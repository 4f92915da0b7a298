/**
 * Store operations on the real PostgreSQL (DATABASE_URL, default the local
 * `test` database) in a throwaway schema, closed-loop with 8 concurrent
 * callers: goal creation, status update, event append (all on one goal, so
 * the gapless counter is contended), SKIP LOCKED claiming and audit append
 * (serialized by design), against the baseline of a bare `select 1` round trip
 * through the same pool; and goal create and read by id for a tenant without
 * and one with encryption at rest (`sensitive`, data keys wrapped by a file
 * KEK), in the same run; and a planned goal's writes (plan, steps, attempts,
 * an event) and its plan, steps and attempts read back, in clear, `sensitive`
 * and `all`.
 *
 * `agentmesh bench store` (2,000 operations each); `--smoke`: 200.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import { setTenantEncryption } from "../lib/store/tenant-keys.js";
import { openTestStore } from "../lib/store/testing.js";
import { defaultDatabaseUrl } from "../lib/testing/infra.js";
import type { Benchmark } from "./benchmark.js";
import { LatencyHistogram } from "./histogram.js";

const concurrency = 8;

async function measure(total: number, op: (i: number) => Promise<unknown>) {
  const histogram = new LatencyHistogram();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) {
        const t0 = process.hrtime.bigint();
        await op(i);
        histogram.recordSince(t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { opsPerSecond: Math.round(total / seconds), ...histogram.summary() };
}

export const store: Benchmark = {
  name: "store",
  description: "repository operations on PostgreSQL vs a bare select-1 round trip",
  async run({ smoke }) {
    const n = smoke ? 200 : 2000;
    const home = mkdtempSync(join(tmpdir(), "bench-store-"));
    const secrets = openFileSecrets({ home, env: {}, pollMs: 0 });
    const t = await openTestStore({
      databaseUrl: process.env.DATABASE_URL || defaultDatabaseUrl,
      secrets,
    });
    try {
      const s = t.store;
      await s.tenants.create({ id: "bench", displayName: "Bench" });
      const acme = s.tenant("bench");
      const em = () => s.orm.em.fork();
      const baseline = await measure(n, () => em().execute("select 1"));
      const created: { id: string; version: number }[] = [];
      const create = await measure(n, async (i) => {
        const { goal } = await acme.goals.create({
          kind: "bench",
          input: { i },
          idempotencyKey: `k${i}`,
        });
        created.push(goal);
      });
      const update = await measure(n, (i) => {
        const g = created[i] as { id: string; version: number };
        return acme.goals.update(g.id, g.version, { status: "RUNNING" });
      });
      const target = created[0] as { id: string };
      const append = await measure(n, (i) =>
        acme.events.append(target.id, { type: "tick", data: { i } }),
      );
      const claim = await measure(Math.floor(n / 10), (i) =>
        s.work.claimGoals({ owner: `w${i % concurrency}`, statuses: ["RUNNING"], limit: 10 }),
      );
      const audit = await measure(n, (i) =>
        s.audit.append({ actor: "bench", action: "bench.op", resource: `op/${i}` }),
      );
      // The same goals for a tenant in clear and one encrypting at rest.
      const text = "Agents run steps. The executor merges results. ".repeat(8);
      const byTenant = async (tenantId: string) => {
        const goals = s.tenant(tenantId).goals;
        const ids: string[] = [];
        const createOp = await measure(n, async (i) => {
          ids.push((await goals.create({ kind: "bench", input: { i, text } })).goal.id);
        });
        const readOp = await measure(n, (i) => goals.get(ids[i] as string));
        return { create: createOp, read: readOp };
      };
      /**
       * A planned goal written as the executor writes it (goal, plan with two
       * steps, an attempt, in one statement), then a step finished with its
       * attempt's output and an event; read back as the executor loads it
       * (plan, steps, attempts).
       */
      const byTenantPlanned = async (tenantId: string) => {
        const tenant = s.tenant(tenantId);
        const ids: { goalId: string; planId: string }[] = [];
        const write = await measure(n, async (i) => {
          const { goal } = await tenant.goals.create({ kind: "bench", input: { i, text } });
          const planId = `plan-${goal.id}`;
          const spec = {
            planId,
            steps: [
              { stepId: "a", capability: "text.summarize", dependsOn: [], input: { text } },
              { stepId: "b", capability: "text.analyze", dependsOn: ["a"], input: { text } },
            ],
          };
          const attemptId = `${goal.id}:a:1:0`;
          const planned = await tenant.goals.update(
            goal.id,
            goal.version,
            { planId, status: "RUNNING" },
            {
              ctes: await tenant.plans.plannedWrites(
                {
                  id: planId,
                  goalId: goal.id,
                  goalKind: "bench",
                  strategy: "solo",
                  outputStep: "b",
                  spec,
                },
                [
                  { stepId: "a", capability: "text.summarize", status: "DISPATCHED", attempts: 1 },
                  { stepId: "b", capability: "text.analyze", dependsOn: ["a"] },
                ],
                [{ attemptId, stepId: "a", attempt: 1 }],
              ),
            },
          );
          const finishedAt = new Date();
          await tenant.goals.update(
            goal.id,
            planned.version,
            {},
            {
              events: [
                {
                  type: "stepSucceeded",
                  data: { stepSucceeded: { stepId: "a", output: { text } } },
                },
              ],
              ctes: await tenant.plans.stepWrites(
                planId,
                [
                  {
                    stepId: "a",
                    expectedVersion: 1,
                    status: "SUCCEEDED",
                    attempts: 1,
                    output: { text },
                    finishedAt,
                  },
                ],
                [],
                [
                  {
                    attemptId,
                    stepId: "a",
                    attempt: 1,
                    outcome: "SUCCEEDED",
                    output: { text },
                    finishedAt,
                  },
                ],
              ),
            },
          );
          ids.push({ goalId: goal.id, planId });
        });
        const read = await measure(n, (i) => {
          const { planId } = ids[i] as { planId: string };
          return Promise.all([
            tenant.plans.get(planId),
            tenant.plans.steps(planId),
            tenant.plans.attemptsOfPlans([planId]),
          ]);
        });
        return { write, read };
      };
      await s.tenants.create({ id: "bench-clear", displayName: "Bench clear" });
      await s.tenants.create({ id: "bench-sealed", displayName: "Bench sealed" });
      await s.tenants.create({ id: "bench-all", displayName: "Bench all" });
      await setTenantEncryption(s, "bench-sealed", "sensitive", "bench");
      await setTenantEncryption(s, "bench-all", "all", "bench");
      const clear = await byTenant("bench-clear");
      const sealed = await byTenant("bench-sealed");
      const plannedClear = await byTenantPlanned("bench-clear");
      const plannedSensitive = await byTenantPlanned("bench-sealed");
      const plannedAll = await byTenantPlanned("bench-all");
      const ratio = (a: { p50Us: number }, b: { p50Us: number }) => a.p50Us / b.p50Us;
      const verifyStart = performance.now();
      const verdict = await s.audit.verify();
      const verifyMs = Math.round(performance.now() - verifyStart);
      return {
        operations: n,
        concurrency,
        baselineSelect1: baseline,
        goalCreate: { ...create, ratioToBaselineP50: create.p50Us / baseline.p50Us },
        goalUpdate: { ...update, ratioToBaselineP50: update.p50Us / baseline.p50Us },
        eventAppendOneGoal: { ...append, ratioToBaselineP50: append.p50Us / baseline.p50Us },
        claimGoals10: claim,
        auditAppend: { ...audit, ratioToBaselineP50: audit.p50Us / baseline.p50Us },
        auditVerify: { rows: verdict.ok ? verdict.rows : -1, ms: verifyMs },
        encryptionAtRest: {
          inputBytes: JSON.stringify({ i: 0, text }).length,
          goalCreateClear: clear.create,
          goalCreateEncrypted: {
            ...sealed.create,
            ratioToClearP50: sealed.create.p50Us / clear.create.p50Us,
          },
          goalReadClear: clear.read,
          goalReadEncrypted: {
            ...sealed.read,
            ratioToClearP50: sealed.read.p50Us / clear.read.p50Us,
          },
          // Two updates (planned; a step done) after a create, and plan + steps + attempts read.
          plannedGoalWriteClear: plannedClear.write,
          plannedGoalWriteSensitive: {
            ...plannedSensitive.write,
            ratioToClearP50: ratio(plannedSensitive.write, plannedClear.write),
          },
          plannedGoalWriteAll: {
            ...plannedAll.write,
            ratioToClearP50: ratio(plannedAll.write, plannedClear.write),
          },
          planStepsReadClear: plannedClear.read,
          planStepsReadSensitive: {
            ...plannedSensitive.read,
            ratioToClearP50: ratio(plannedSensitive.read, plannedClear.read),
          },
          planStepsReadAll: {
            ...plannedAll.read,
            ratioToClearP50: ratio(plannedAll.read, plannedClear.read),
          },
        },
      };
    } finally {
      await t.cleanup();
      await secrets.close();
      rmSync(home, { recursive: true, force: true });
    }
  },
};
