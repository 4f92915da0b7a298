/**
 * Store operations on the real PostgreSQL (DATABASE_URL, default the local
 * `test` database) in a throwaway schema, closed-loop with 8 concurrent
 * callers: goal creation, status update, event append (all on one goal, so
 * the gapless counter is contended), SKIP LOCKED claiming and audit append
 * (serialized by design), against the baseline of a bare `select 1` round trip
 * through the same pool; and goal create and read by id for a tenant without
 * and ones with encryption at rest (`sensitive` and `all`, data keys wrapped
 * by a file KEK), and a planned goal's writes (plan, steps, attempts, an
 * event) and its plan, steps and attempts read back, in the same run with the
 * three tenants' operations interleaved.
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
import { LatencyHistogram, type LatencySummary } from "./histogram.js";

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

/**
 * The same operation for several tenants under the same load: each caller
 * takes the next index and runs every tenant's operation on it, in an order
 * that rotates with the index, so no tenant always goes first or meets a
 * fuller table; one histogram a tenant.
 */
async function measureInterleaved<K extends string>(
  total: number,
  ops: Record<K, (i: number) => Promise<unknown>>,
): Promise<Record<K, LatencySummary>> {
  const names = Object.keys(ops) as K[];
  const histograms = new Map(names.map((k) => [k, new LatencyHistogram()]));
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < total; i = next++) {
        for (let j = 0; j < names.length; j++) {
          const name = names[(i + j) % names.length] as K;
          const t0 = process.hrtime.bigint();
          await ops[name](i);
          histograms.get(name)?.recordSince(t0);
        }
      }
    }),
  );
  return Object.fromEntries(names.map((k) => [k, histograms.get(k)!.summary()])) as Record<
    K,
    LatencySummary
  >;
}

/** Each mode's figures with its p50 as a ratio of the clear tenant's. */
function againstClear(m: Record<"clear" | "sensitive" | "all", LatencySummary>) {
  return {
    clear: m.clear,
    sensitive: { ...m.sensitive, ratioToClearP50: m.sensitive.p50Us / m.clear.p50Us },
    all: { ...m.all, ratioToClearP50: m.all.p50Us / m.clear.p50Us },
  };
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
      // The same goals for a tenant in clear and ones encrypting at rest, interleaved.
      const text = "Agents run steps. The executor merges results. ".repeat(8);
      const modes = { clear: "off", sensitive: "sensitive", all: "all" } as const;
      type Mode = keyof typeof modes;
      const tenantOf = (m: Mode) => `bench-${m}`;
      for (const [m, encryption] of Object.entries(modes)) {
        await s.tenants.create({ id: tenantOf(m as Mode), displayName: `Bench ${m}` });
        await setTenantEncryption(s, tenantOf(m as Mode), encryption, "bench");
      }
      const perMode = (op: (m: Mode, i: number) => Promise<unknown>) =>
        measureInterleaved(n, {
          clear: (i) => op("clear", i),
          sensitive: (i) => op("sensitive", i),
          all: (i) => op("all", i),
        });
      const goalIds: Record<Mode, string[]> = { clear: [], sensitive: [], all: [] };
      const goalCreate = await perMode(async (m, i) => {
        const { goal } = await s
          .tenant(tenantOf(m))
          .goals.create({ kind: "bench", input: { i, text } });
        goalIds[m][i] = goal.id;
      });
      const goalRead = await perMode((m, i) => s.tenant(tenantOf(m)).goals.get(goalIds[m][i]!));
      /**
       * A planned goal written as the executor writes it (goal, plan with two
       * steps, an attempt, in one statement), then a step finished with its
       * attempt's output and an event; read back as the executor loads it
       * (plan, steps, attempts).
       */
      const planIds: Record<Mode, string[]> = { clear: [], sensitive: [], all: [] };
      const plannedGoalWrite = await perMode(async (m, i) => {
        const tenant = s.tenant(tenantOf(m));
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
        const update = await tenant.goals.prepareUpdate(
          goal.id,
          planned.version,
          { status: "RUNNING" },
          {
            afterEventSeq: planned.lastEventSeq,
            events: [
              { type: "stepSucceeded", data: { stepSucceeded: { stepId: "a", output: { text } } } },
            ],
            steps: await tenant.plans.sealStepChanges(
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
        const [done] = await s.updateGoals([update]);
        if (done instanceof Error) throw done;
        planIds[m][i] = planId;
      });
      const planStepsRead = await perMode((m, i) => {
        const plans = s.tenant(tenantOf(m)).plans;
        const planId = planIds[m][i]!;
        return Promise.all([
          plans.get(planId),
          plans.steps(planId),
          plans.attemptsOfPlans([planId]),
        ]);
      });
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
          order: "interleaved: each index runs clear, sensitive and all in rotating order",
          goalCreate: againstClear(goalCreate),
          goalRead: againstClear(goalRead),
          // A create and two updates (planned; a step done), and plan + steps + attempts read.
          plannedGoalWrite: againstClear(plannedGoalWrite),
          planStepsRead: againstClear(planStepsRead),
        },
      };
    } finally {
      await t.cleanup();
      await secrets.close();
      rmSync(home, { recursive: true, force: true });
    }
  },
};
