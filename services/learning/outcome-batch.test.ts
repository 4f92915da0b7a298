/**
 * Outcomes recorded together (group commit), against the real PostgreSQL:
 * a batch leaves every statistic as recording its outcomes one at a time
 * would (decay, forgetting with resets, reliability, serving counts), counts
 * each goal once, and one bad outcome fails alone.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import {
  type BatchOutcome,
  type Store,
  type StrategyStatsRecord,
  storeCounts,
} from "../../lib/store/index.js";
import { RELIABILITY_MIRROR_TOLERANCE } from "../../lib/store/learning-repository.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import { bucketKey, createRng, DEFAULT_FORGETTING } from "./domain/index.js";
import { createLearningEngine } from "./learning-engine.js";

const pg = await needPostgres();
const minute = 60_000;

/** |a − b| within 1e-9 of b's size. */
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

describe.skipIf(!pg)("learning: outcomes recorded together", () => {
  let t: TestStore;
  let store: Store;
  const sql = <T>(text: string, params: unknown[] = []) =>
    store.orm.em.fork().execute<T[]>(text, params);

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    for (const id of ["one", "batch", "seq", "conc", "mixed", "other"]) {
      await store.tenants.create({ id, displayName: id });
    }
    await store.learning.createParameters({
      version: "v1",
      state: "CURRENT",
      params: { halfLifeMs: 5 * minute },
    });
  });
  afterAll(() => t?.cleanup());

  /**
   * 150 outcomes over two buckets and two strategies, mostly successes then
   * mostly failures (so forgetting resets the long counts), each with one or
   * two agent results, finishing a second apart in the last minutes.
   */
  const stream = () => {
    const coin = createRng("batch-equivalence");
    const base = Date.now() - 4 * minute;
    return Array.from({ length: 150 }, (_, i) => {
      const success = coin.next() < (i < 90 ? 0.9 : 0.1);
      return {
        i,
        bucket: `b${i % 2}`,
        strategy: coin.next() < 0.7 ? "solo" : "team",
        success,
        latencyMs: Math.round(100 + coin.next() * 900),
        cost: Math.round(coin.next() * 100) / 100,
        at: new Date(base + i * 1000),
        agents: [
          { agent: "a1", capability: "text.summarize", success },
          ...(coin.next() < 0.5
            ? [{ agent: "a2", capability: "text.translate", success: !success }]
            : []),
        ],
      };
    });
  };
  type Step = ReturnType<typeof stream>[number];

  /** Step `s` of tenant `ns` as the learning engine would record it (version v1 serving). */
  const batchOutcome = async (ns: string, s: Step): Promise<BatchOutcome> => ({
    experience: await store.tenant(ns).experiences.prepare({
      goalId: `${ns}-${s.i}`,
      goalKind: "report",
      bucket: s.bucket,
      strategy: s.strategy,
      parametersVersion: "v1",
      success: s.success,
      latencyMs: s.latencyMs,
      cost: s.cost,
      outcome: { goalId: `${ns}-${s.i}` },
      createdAt: s.at,
    }),
    strategy: [
      {
        bucket: `v1|${ns}|${s.bucket}`,
        strategy: s.strategy,
        tenantId: ns,
        goalKind: "report",
        success: s.success,
        latencyMs: s.latencyMs,
        cost: s.cost,
        at: s.at,
        decayHalfLifeMs: 5 * minute,
        forgetting: DEFAULT_FORGETTING,
      },
    ],
    parameters: { version: "v1", success: s.success },
    reliability: s.agents.map((a) => ({
      agentId: `${ns}-${a.agent}`,
      capability: a.capability,
      success: a.success,
    })),
  });

  /** Statistics rows of `ns` (one per bucket and strategy) with counts 4/2 (recent 3/1), last written at `updatedAt`. */
  const seed = async (ns: string, updatedAt: Date) => {
    for (const b of ["b0", "b1"]) {
      for (const strategy of ["solo", "team"]) {
        await store.learning.recordStrategyOutcome({
          bucket: `v1|${ns}|${b}`,
          strategy,
          success: true,
          latencyMs: 1,
        });
      }
    }
    await sql(
      `update strategy_stats set successes = 4, failures = 2, recent_successes = 3,
         recent_failures = 1, updated_at = ? where bucket like ?`,
      [updatedAt, `v1|${ns}|%`],
    );
  };

  const statistics = async (ns: string) => {
    const rows = await store.learning.strategyStats({});
    const strategy = new Map<string, StrategyStatsRecord>();
    for (const r of rows) {
      if (r.bucket.startsWith(`v1|${ns}|`)) {
        strategy.set(`${r.bucket.slice(`v1|${ns}|`.length)} ${r.strategy}`, r);
      }
    }
    const reliability = new Map(
      (await store.learning.listReliability())
        .filter((r) => r.agentId.startsWith(`${ns}-`))
        .map((r) => [`${r.agentId.slice(ns.length + 1)} ${r.capability}`, r]),
    );
    return { strategy, reliability };
  };

  const served = async () => {
    const v1 = await store.learning.getParameters("v1");
    return [v1.successes, v1.failures];
  };

  it("a batch leaves the statistics one statement per outcome leaves", async () => {
    const steps = stream();
    const seeded = new Date(Date.now() - 7 * minute);
    await seed("one", seeded);
    await seed("batch", seeded);

    const before = await served();
    for (const s of steps) {
      const answer = await store.learning.recordOutcomes(["v1"], [await batchOutcome("one", s)]);
      expect(answer).toEqual({ status: "done", recorded: [true] });
    }
    const oneByOne = await served();

    // The same outcomes in batches of varying size; each batch also carries an
    // outcome of the batch before again (a redelivery): not recorded, not counted.
    const sizes = [1, 5, 17, 2, 40, 3, 30, 1, 51];
    let at = 0;
    let previous: Step | undefined;
    for (let b = 0; at < steps.length; b++) {
      const batch = steps.slice(at, at + sizes[b % sizes.length]!);
      at += batch.length;
      const outcomes = await Promise.all(batch.map((s) => batchOutcome("batch", s)));
      if (previous) outcomes.splice(1, 0, await batchOutcome("batch", previous));
      const answer = await store.learning.recordOutcomes(["v1"], outcomes);
      expect(answer).toEqual({
        status: "done",
        recorded: outcomes.map((_, i) => !(previous && i === 1)),
      });
      previous = batch[batch.length - 1];
    }
    const batched = await served();

    // The serving counts: each outcome once.
    const wins = steps.filter((s) => s.success).length;
    expect([oneByOne[0]! - before[0]!, oneByOne[1]! - before[1]!]).toEqual([
      wins,
      steps.length - wins,
    ]);
    expect([batched[0]! - oneByOne[0]!, batched[1]! - oneByOne[1]!]).toEqual([
      wins,
      steps.length - wins,
    ]);

    const one = await statistics("one");
    const many = await statistics("batch");
    expect([...many.strategy.keys()].sort()).toEqual([...one.strategy.keys()].sort());
    let resets = 0;
    for (const [key, a] of one.strategy) {
      const b = many.strategy.get(key)!;
      for (const field of [
        "successes",
        "failures",
        "recentSuccesses",
        "recentFailures",
        "latencySumMs",
        "costSum",
      ] as const) {
        expect(close(b[field], a[field]), `${key} ${field}: ${b[field]} vs ${a[field]}`).toBe(true);
      }
      expect(b.outcomes).toBe(a.outcomes);
      // Without a reset the long counts hold at least Σ discount^k over the row's
      // outcomes (the seed's counts only add); a reset replaced them by far fewer.
      const n = a.outcomes - 1;
      const d = DEFAULT_FORGETTING.discount;
      if (a.successes + a.failures < (1 - d ** n) / (1 - d) - 1e-6) resets++;
    }
    // The stream's drop made forgetting reset some rows: the nonlinear step is exercised.
    expect(resets).toBeGreaterThan(0);
    expect([...many.reliability.keys()].sort()).toEqual([...one.reliability.keys()].sort());
    for (const [key, a] of one.reliability) {
      const b = many.reliability.get(key)!;
      expect(close(b.score, a.score), `${key} score`).toBe(true);
      expect(close(b.observations, a.observations), `${key} observations`).toBe(true);
    }
  });

  it("writes an agent's mirrored score only when it moved", async () => {
    const agentId = (
      await store.agents.upsert({
        name: "mirror-agent",
        instanceId: "i-1",
        card: {},
        spiffeId: "spiffe://agentmesh.local/ns/agentmesh/sa/mirror-agent",
        capabilities: ["text.summarize"],
        leaseExpiresAt: new Date(Date.now() + 60_000),
      })
    ).agent.id;
    const version = async () =>
      (await sql<{ xmin: string }>("select xmin::text from agents where id = ?", [agentId]))[0]!
        .xmin;
    const record = (n: number, success: boolean) =>
      Promise.all(
        Array.from({ length: n }, async () =>
          store.learning.recordReliabilityOutcome({
            agentId,
            capability: "text.summarize",
            success,
          }),
        ),
      );
    await record(1, true);
    expect((await store.agents.get(agentId)).reliability).toEqual({ "text.summarize": 1 });
    // Successes keep the score at 1: the agent's row is not written again.
    const settled = await version();
    await record(5, true);
    expect(await version()).toBe(settled);
    // A failure moves it: mirrored, within the tolerance of the reliability row.
    await record(1, false);
    expect(await version()).not.toBe(settled);
    const [row] = await store.learning.listReliability({ agentIds: [agentId] });
    const mirrored = (await store.agents.get(agentId)).reliability["text.summarize"]!;
    expect(Math.abs(mirrored - row!.score)).toBeLessThan(RELIABILITY_MIRROR_TOLERANCE);
    expect(mirrored).toBeLessThan(1);
  });

  const engine = () =>
    createLearningEngine({
      store,
      log: createLogger({ name: "learning-test", level: "silent" }),
      driftEvery: 1e9,
      maxOutcomeBatch: 16,
    });

  const outcome = (tenantId: string, goalId: string, success = true) =>
    create(OutcomeSchema, {
      goalId,
      context: { tenantId, goalKind: "report", sizeClass: "s", text: "summarize it" },
      strategy: "solo",
      parametersVersion: "v1",
      success,
      latency: durationFromMs(800),
      cost: 0.25,
      finishedAt: timestampFromMs(Date.now()),
      agentResults: [
        {
          agentId: `${tenantId}-agent`,
          capability: "text.summarize",
          success,
          latency: durationFromMs(700),
        },
      ],
    });

  it("the engine records outcomes arriving together in few statements, each once", async () => {
    const e = engine();
    await e.state.versions();
    await e.record(outcome("conc", "conc-warm"));
    const bucket = `v1|${bucketKey({ tenantId: "conc", goalKind: "report", sizeClass: "s", text: "" })}`;
    const row = async () =>
      (await store.learning.strategyStats({ tenantId: "conc" })).find((r) => r.bucket === bucket)!;
    const before = await row();
    const batchesBefore = e.outcomeBatches.batches;
    const statementsBefore = storeCounts.statements;
    const results = await Promise.all(
      Array.from({ length: 48 }, (_, i) => e.record(outcome("conc", `conc-${i}`, i % 4 !== 0))),
    );
    const statements = storeCounts.statements - statementsBefore;
    expect(results.every(Boolean)).toBe(true);
    const batches = e.outcomeBatches.batches - batchesBefore;
    // 48 outcomes in batches of at most 16: 3 or a few more, one statement each.
    expect(batches).toBeGreaterThanOrEqual(3);
    expect(batches).toBeLessThan(12);
    expect(statements).toBe(batches);
    const after = await row();
    expect(after.outcomes - before.outcomes).toBe(48);
    expect(after.latencySumMs - before.latencySumMs).toBeCloseTo(48 * 800, 6);
    const [rel] = await store.learning.listReliability({ agentIds: ["conc-agent"] });
    // 49 results at 0.98 per result: n = Σ 0.98^k.
    expect(rel!.observations).toBeCloseTo((1 - 0.98 ** 49) / (1 - 0.98), 9);
  });

  it("one bad outcome fails alone: the rest of its batch is recorded once", async () => {
    const e = engine();
    await e.state.versions();
    expect(await e.record(outcome("mixed", "mixed-before"))).toBe(true);
    expect(await e.record(outcome("other", "taken-by-other"))).toBe(true);
    const twice = outcome("mixed", "mixed-twice");
    const settled = await Promise.allSettled([
      e.record(outcome("mixed", "mixed-1")),
      e.record(outcome("ghost", "ghost-1")), // no such tenant
      e.record(outcome("mixed", "taken-by-other")), // another tenant's goal id
      e.record(outcome("mixed", "mixed-before")), // recorded before
      e.record(twice),
      e.record(twice),
      e.record(outcome("mixed", "mixed-2", false)),
    ]);
    expect(settled).toMatchObject([
      { status: "fulfilled", value: true },
      { status: "rejected", reason: { code: Code.NotFound } },
      { status: "rejected", reason: { code: Code.AlreadyExists } },
      { status: "fulfilled", value: false },
      { status: "fulfilled", value: true },
      { status: "fulfilled", value: false },
      { status: "fulfilled", value: true },
    ]);
    const goals = await sql<{ goal_id: string }>(
      "select goal_id from experiences where tenant_id = 'mixed' order by 1",
    );
    expect(goals.map((g) => g.goal_id)).toEqual([
      "mixed-1",
      "mixed-2",
      "mixed-before",
      "mixed-twice",
    ]);
    const [row] = await store.learning.strategyStats({ tenantId: "mixed" });
    expect(row!.outcomes).toBe(4);
    const [rel] = await store.learning.listReliability({ agentIds: ["mixed-agent"] });
    expect(rel!.observations).toBeCloseTo((1 - 0.98 ** 4) / (1 - 0.98), 9);
  });
});
