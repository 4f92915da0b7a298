/**
 * What a ChooseStrategy costs: the learning engine in this process against the
 * real PostgreSQL (a schema of its own), `TOTAL` decisions with `CONCURRENCY`
 * in flight over 8 warm buckets (4 goal kinds × 2 size classes, 3 strategies),
 * printing CPU per decision of this process and of PostgreSQL (a shared
 * server: other clients count too) and statements per decision. Not a
 * benchmark with a baseline: a tool for measuring a lever before and after.
 *
 *   TOTAL=5000 CONCURRENCY=32 node --import tsx bench/profile-choose.ts
 */
import { create } from "@bufbuild/protobuf";
import { DecisionContextSchema } from "../gen/agentmesh/v1/common_pb.js";
import { OutcomeSchema } from "../gen/agentmesh/v1/jobs_pb.js";
import { createLogger } from "../lib/log/logger.js";
import { storeCounts } from "../lib/store/store-metrics.js";
import { openTestStore } from "../lib/store/testing.js";
import { defaultDatabaseUrl } from "../lib/testing/infra.js";
import { createLearningEngine } from "../services/learning/learning-engine.js";
import { commandCpuSeconds } from "./process-cpu.js";

const total = Number(process.env.TOTAL ?? 5_000);
const concurrency = Number(process.env.CONCURRENCY ?? 32);
const t = await openTestStore({ databaseUrl: process.env.DATABASE_URL || defaultDatabaseUrl });
try {
  const { store } = t;
  const tenantId = "acme";
  await store.tenants.create({ id: tenantId, displayName: "Acme" });
  const engine = createLearningEngine({
    store,
    log: createLogger({ name: "profile-choose", level: "warn" }),
  });
  const candidates = ["solo", "pair", "team"];
  const contexts = ["report", "search", "translate", "review"].flatMap((goalKind) =>
    ["s", "m"].map((sizeClass) =>
      create(DecisionContextSchema, { tenantId, goalKind, sizeClass, text: `a ${goalKind}` }),
    ),
  );
  // Warm buckets (≥ 20 outcomes each): no decision needs a warm start.
  let goal = 0;
  for (const context of contexts) {
    for (let i = 0; i < 30; i++) {
      await engine.record(
        create(OutcomeSchema, {
          goalId: `warm-${goal++}`,
          context,
          strategy: candidates[i % 3]!,
          success: i % 4 !== 0,
          parametersVersion: "v0",
        }),
      );
    }
  }
  const choose = () =>
    engine.choose({
      context: contexts[goal++ % contexts.length],
      candidates,
      goalId: `g-${goal}`,
    });
  for (let i = 0; i < 200; i++) await choose(); // JIT, pool
  const statements0 = storeCounts.statements;
  const cpu0 = process.cpuUsage();
  const pg0 = commandCpuSeconds(["postgres"]).postgres!;
  const t0 = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < total) await choose();
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const perChoice = (s: number) => Math.round((s * 1e6) / total) / 1000;
  console.log(
    JSON.stringify({
      decisions: total,
      concurrency,
      decisionsPerSecond: Math.round(total / seconds),
      cpuMsPerDecision: perChoice((cpu.user + cpu.system) / 1e6),
      postgresCpuMsPerDecision: perChoice(commandCpuSeconds(["postgres"]).postgres! - pg0),
      statementsPerDecision:
        Math.round(((storeCounts.statements - statements0) / total) * 100) / 100,
    }),
  );
} finally {
  await t.cleanup();
}
