/**
 * Decisions made at the same moment share their reads (the versions, a
 * bucket's statistics) and count their choices in one statement, and every
 * choice is still counted once.
 */
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionContextSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { createLogger } from "../../lib/log/logger.js";
import { type Store, storeCounts } from "../../lib/store/index.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import { bucketKey } from "./domain/index.js";
import { createLearningEngine } from "./learning-engine.js";
import { onlineKey, untrainedVersion } from "./learning-state.js";

const pg = await needPostgres();
const tenantId = "acme";
const contexts = ["report", "search"].map((goalKind) =>
  create(DecisionContextSchema, { tenantId, goalKind, sizeClass: "s", text: goalKind }),
);
const candidates = ["solo", "pair", "team"];

describe.skipIf(!pg)("learning engine: decisions made together", () => {
  let t: TestStore;
  let store: Store;

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: tenantId, displayName: "Acme" });
  });
  afterAll(() => t?.cleanup());

  const pullsOf = async () => {
    const out: Record<string, number> = {};
    for (const r of await store.learning.strategyStats({ tenantId })) {
      out[`${r.bucket}/${r.strategy}`] = r.pulls;
    }
    return out;
  };

  it("counts every choice once, in fewer statements than one per read and write", async () => {
    const engine = createLearningEngine({
      store,
      log: createLogger({ name: "learning-test", level: "silent" }),
    });
    // Warm buckets (≥ 20 outcomes each): no decision reads similar experiences.
    for (const context of contexts) {
      for (const strategy of candidates) {
        await store.learning.recordStrategyOutcome({
          bucket: onlineKey(untrainedVersion, bucketKey(context)),
          strategy,
          tenantId,
          goalKind: context.goalKind,
          success: true,
          latencyMs: 10,
        });
      }
    }
    await store.orm.em
      .fork()
      .execute("update strategy_stats set successes = 10 where tenant_id = ?", [tenantId]);
    await engine.choose({ context: contexts[0], candidates }); // flags read, pool warm
    const before = await pullsOf();
    const statements = storeCounts.statements;
    const n = 60;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        engine.choose({ context: contexts[i % 2], candidates, goalId: `g-${i}` }),
      ),
    );
    const ran = storeCounts.statements - statements;
    // Alone, each decision reads the versions and its bucket and writes its pull: 3 × 60.
    expect(ran).toBeLessThan(n);
    const chosen: Record<string, number> = {};
    results.forEach((r, i) => {
      const key = `${onlineKey(untrainedVersion, bucketKey(contexts[i % 2]!))}/${r.strategy}`;
      chosen[key] = (chosen[key] ?? 0) + 1;
    });
    const after = await pullsOf();
    for (const [key, count] of Object.entries(chosen)) {
      expect(after[key]! - (before[key] ?? 0)).toBe(count);
    }
    expect(Object.values(after).reduce((a, b) => a + b, 0)).toBe(
      Object.values(before).reduce((a, b) => a + b, 0) + n,
    );
  });

  it("reads the statistics a recorded outcome left, once the outcome is recorded", async () => {
    const engine = createLearningEngine({
      store,
      log: createLogger({ name: "learning-test", level: "silent" }),
    });
    const context = create(DecisionContextSchema, {
      tenantId,
      goalKind: "fresh",
      sizeClass: "s",
      text: "fresh",
    });
    const key = onlineKey(untrainedVersion, bucketKey(context));
    await store.learning.recordStrategyOutcome({
      bucket: key,
      strategy: "pair",
      tenantId,
      goalKind: "fresh",
      success: true,
      latencyMs: 10,
    });
    const params = await engine.state.parameters(untrainedVersion, bucketKey(context), Date.now());
    expect(params.buckets[bucketKey(context)]?.pair?.successes).toBeCloseTo(1, 6);
  });
});
