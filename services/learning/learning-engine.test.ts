/**
 * Recording an outcome against the real PostgreSQL: one statement folds it
 * into the experience, every serving version's statistics (each with its own
 * decay), the choosing version's count and agent reliability, exactly once,
 * or changes nothing at all.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import { type Store, storeCounts } from "../../lib/store/index.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres, runId } from "../../lib/testing/infra.js";
import { bucketKey, DEFAULT_DISCOUNT } from "./domain/index.js";
import { createLearningEngine, type LearningEngine } from "./learning-engine.js";
import { onlineKey } from "./learning-state.js";

const pg = await needPostgres();

const tenantId = "acme";
const context = { tenantId, goalKind: "report", sizeClass: "s", text: "summarize it" };
const bucket = bucketKey(context);
const minute = 60_000;

describe.skipIf(!pg)("learning engine: recording an outcome", () => {
  let t: TestStore;
  let store: Store;
  let agentA = "";
  let agentB = "";

  const engine = (): LearningEngine =>
    createLearningEngine({
      store,
      log: createLogger({ name: "learning-test", level: "silent" }),
      driftEvery: 1e9,
    });

  const sql = <T>(text: string, params: unknown[] = []) =>
    store.orm.em.fork().execute<T[]>(text, params);

  const outcome = (
    o: {
      goalId?: string;
      tenant?: string;
      success?: boolean;
      parametersVersion?: string;
      finishedAt?: number;
      agents?: { agentId: string; capability: string; success: boolean }[];
    } = {},
  ) =>
    create(OutcomeSchema, {
      goalId: o.goalId ?? runId("g"),
      context: { ...context, tenantId: o.tenant ?? tenantId },
      strategy: "solo",
      parametersVersion: o.parametersVersion ?? "",
      success: o.success ?? true,
      latency: durationFromMs(800),
      cost: 0.25,
      finishedAt: timestampFromMs(o.finishedAt ?? Date.now()),
      agentResults: (o.agents ?? []).map((a) => ({ ...a, latency: durationFromMs(700) })),
    });

  /** Everything an outcome may change, to compare before and after. */
  const everything = async () => ({
    strategy: await store.learning.strategyStats(),
    versions: (await store.learning.listParameters()).map((v) => [
      v.version,
      v.successes,
      v.failures,
    ]),
    reliability: await store.learning.listReliability(),
    agents: (await store.agents.list({})).agents.map((a) => [a.id, a.reliability]),
    experiences: (await sql<{ goal_id: string }>("select goal_id from experiences order by 1")).map(
      (r) => r.goal_id,
    ),
  });

  /** Statements the store ran while `fn` did. */
  const statementsOf = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
    const before = storeCounts.statements;
    const result = await fn();
    return [result, storeCounts.statements - before];
  };

  const row = async (version: string) =>
    (await store.learning.strategyStats({ tenantId })).find(
      (r) => r.bucket === onlineKey(version, bucket),
    );

  /** A statistics row of `version` with these counts, last written `ageMs` before `at`. */
  const seedRow = async (version: string, at: number, ageMs: number) => {
    await store.learning.recordStrategyOutcome({
      bucket: onlineKey(version, bucket),
      strategy: "solo",
      tenantId,
      goalKind: context.goalKind,
      success: true,
      latencyMs: 100,
    });
    await sql(
      "update strategy_stats set successes = 4, failures = 2, updated_at = ? where bucket = ?",
      [new Date(at - ageMs), onlineKey(version, bucket)],
    );
  };

  const agent = async (name: string) =>
    (
      await store.agents.upsert({
        name,
        instanceId: "i-1",
        card: {},
        spiffeId: `spiffe://agentmesh.local/ns/agentmesh/sa/${name}`,
        capabilities: ["text.summarize", "text.translate"],
        leaseExpiresAt: new Date(Date.now() + 60_000),
      })
    ).agent.id;

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: tenantId, displayName: "Acme" });
    await store.tenants.create({ id: "beta", displayName: "Beta" });
    agentA = await agent("agent-a");
    agentB = await agent("agent-b");
  });
  afterAll(() => t?.cleanup());

  it("before any training: one statement into the untrained version's statistics", async () => {
    const e = engine();
    const at = Date.now();
    await seedRow("v0", at, minute);
    // A process reads a tenant's encryption mode once (then hears of changes), not per outcome.
    await store.cipher.mode(tenantId);
    const [recorded, statements] = await statementsOf(() =>
      e.record(outcome({ finishedAt: at, success: false })),
    );
    expect([recorded, statements]).toEqual([true, 1]);
    // The untrained version decays with the default half-life (7 days): a minute barely
    // counts; then the default forgetting per outcome (0.995) applies.
    const v0 = await row("v0");
    const d = DEFAULT_DISCOUNT;
    expect(v0?.successes).toBeCloseTo(4 * 2 ** (-minute / (7 * 24 * 60 * minute)) * d, 9);
    expect(v0?.failures).toBeCloseTo(2 * 2 ** (-minute / (7 * 24 * 60 * minute)) * d + 1, 9);
    expect(v0?.outcomes).toBe(2);
  });

  it("folds one outcome into experience, every serving version, the chooser's count and reliability, once", async () => {
    await store.learning.createParameters({
      version: "v1",
      state: "RETIRED",
      params: { halfLifeMs: minute },
    });
    await store.learning.createParameters({
      version: "v2",
      state: "CURRENT",
      params: { halfLifeMs: minute },
    });
    await store.learning.createParameters({
      version: "v3",
      state: "CANARY",
      params: { halfLifeMs: 2 * minute },
      trafficFraction: 0.1,
    });
    const e = engine();
    // What ChooseStrategy calls load: the versions, and the snapshots (cached for good).
    await e.state.versions();
    await Promise.all(["v2", "v3"].map((v) => e.state.snapshot(v)));
    const at = Date.now();
    for (const v of ["v1", "v2", "v3"]) await seedRow(v, at, minute);
    const before = await everything();

    const message = outcome({
      finishedAt: at,
      parametersVersion: "v3",
      agents: [
        // A retry on the same agent: the failure, then the success, fold in order.
        { agentId: agentA, capability: "text.summarize", success: false },
        { agentId: agentA, capability: "text.summarize", success: true },
        { agentId: agentA, capability: "text.translate", success: true },
        { agentId: agentB, capability: "text.summarize", success: false },
      ],
    });
    const [recorded, statements] = await statementsOf(() => e.record(message));
    expect([recorded, statements]).toEqual([true, 1]);

    const after = await everything();
    expect(after.experiences).toEqual([...before.experiences, message.goalId].sort());
    // v2 decays a minute with a 1-minute half-life, v3 with a 2-minute one, both then
    // forget 0.995 per outcome; v1 is retired.
    const d = DEFAULT_DISCOUNT;
    const v2 = await row("v2");
    expect(v2?.successes).toBeCloseTo(4 * 0.5 * d + 1, 9);
    expect(v2?.failures).toBeCloseTo(2 * 0.5 * d, 9);
    const v3 = await row("v3");
    expect(v3?.successes).toBeCloseTo(4 * Math.SQRT1_2 * d + 1, 9);
    expect(v3?.failures).toBeCloseTo(2 * Math.SQRT1_2 * d, 9);
    expect(v3).toMatchObject({ outcomes: 2, latencySumMs: 900, costSum: 0.25 });
    expect(await row("v1")).toEqual(
      before.strategy.find((r) => r.bucket === onlineKey("v1", bucket)),
    );
    expect(after.versions).toEqual(
      before.versions.map(([v, s, f]) => (v === "v3" ? [v, Number(s) + 1, f] : [v, s, f])),
    );

    // Reliability as recording the results one at a time gives it (0.98 per result).
    const afterFailThenSuccess = (0 * 1 * 0.98 + 1) / (1 * 0.98 + 1);
    const reliability = Object.fromEntries(
      after.reliability.map((r) => [`${r.agentId} ${r.capability}`, [r.score, r.observations]]),
    );
    expect(reliability).toEqual({
      [`${agentA} text.summarize`]: [afterFailThenSuccess, 1.98],
      [`${agentA} text.translate`]: [1, 1],
      [`${agentB} text.summarize`]: [0, 1],
    });
    expect(await store.learning.listReliability({ agentIds: ["sequential"] })).toEqual([]);
    await store.learning.recordReliabilityOutcome({
      agentId: "sequential",
      capability: "text.summarize",
      success: false,
    });
    const sequential = await store.learning.recordReliabilityOutcome({
      agentId: "sequential",
      capability: "text.summarize",
      success: true,
    });
    expect([sequential.score, sequential.observations]).toEqual([afterFailThenSuccess, 1.98]);
    // Both of agent A's capabilities reach its row (read by FindAgents).
    expect((await store.agents.get(agentA)).reliability).toEqual({
      "text.summarize": afterFailThenSuccess,
      "text.translate": 1,
    });
    expect((await store.agents.get(agentB)).reliability).toEqual({ "text.summarize": 0 });

    // The same outcome again: resolves false and changes nothing.
    const settled = await everything();
    expect(await e.record(message)).toBe(false);
    expect(await e.record(message)).toBe(false);
    expect(await everything()).toEqual(settled);
  });

  it("counts an outcome recorded by two replicas at once once", async () => {
    const [a, b] = [engine(), engine()];
    await Promise.all([a.state.versions(), b.state.versions()]);
    const agents = [{ agentId: agentB, capability: "text.translate", success: true }];
    for (let i = 0; i < 5; i++) {
      const message = outcome({ parametersVersion: "v2", agents });
      const before = await everything();
      const answers = await Promise.all([a.record(message), b.record(message)]);
      expect(answers.sort()).toEqual([false, true]);
      const after = await everything();
      expect((await row("v2"))?.outcomes).toBe(
        before.strategy.find((r) => r.bucket === onlineKey("v2", bucket))!.outcomes + 1,
      );
      expect(after.versions.find(([v]) => v === "v2")?.[1]).toBe(
        Number(before.versions.find(([v]) => v === "v2")?.[1]) + 1,
      );
      const observations = (s: typeof before) =>
        s.reliability.find((r) => r.agentId === agentB && r.capability === "text.translate")
          ?.observations ?? 0;
      expect(observations(after)).toBeCloseTo(observations(before) * 0.98 + 1, 12);
    }
  });

  it("an outcome of an unknown tenant is NOT_FOUND and writes nothing", async () => {
    const before = await everything();
    const message = outcome({
      tenant: "ghost",
      parametersVersion: "v2",
      agents: [{ agentId: agentA, capability: "text.summarize", success: true }],
    });
    await expect(engine().record(message)).rejects.toMatchObject({ code: Code.NotFound });
    expect(await everything()).toEqual(before);
  });

  it("a goal id another tenant recorded is ALREADY_EXISTS and writes nothing", async () => {
    const message = outcome();
    expect(await engine().record(message)).toBe(true);
    const before = await everything();
    const theirs = outcome({ goalId: message.goalId, tenant: "beta", parametersVersion: "v2" });
    await expect(engine().record(theirs)).rejects.toMatchObject({ code: Code.AlreadyExists });
    expect(await everything()).toEqual(before);
  });

  it("a failure midway leaves nothing half-written", async () => {
    // The reliability upsert runs after the experience and statistics writes in the statement.
    await sql(`create function ${t.schema}.refuse_agent() returns trigger language plpgsql as $$
      begin
        if new.agent_id = 'agent-refused' then raise exception 'refused'; end if;
        return new;
      end $$`);
    await sql(`create trigger refuse_agent before insert on agent_reliability
      for each row execute function ${t.schema}.refuse_agent()`);
    const e = engine();
    await e.state.versions();
    const before = await everything();
    const message = outcome({
      parametersVersion: "v2",
      agents: [
        { agentId: agentA, capability: "text.summarize", success: true },
        { agentId: "agent-refused", capability: "text.summarize", success: true },
      ],
    });
    await expect(e.record(message)).rejects.toThrow();
    expect(await everything()).toEqual(before);

    await sql("drop trigger refuse_agent on agent_reliability");
    expect(await e.record(message)).toBe(true);
    expect((await everything()).experiences).toContain(message.goalId);
  });

  it("when other versions serve than this process saw, redoes the statement with them", async () => {
    const e = engine();
    await e.state.versions();
    expect([...e.state.servingVersions()].sort()).toEqual(["v2", "v3"]);
    expect(await e.record(outcome())).toBe(true); // and the versions' snapshots are cached
    // Another replica's drift guard rolls the canary back.
    const v3 = await store.learning.getParameters("v3");
    await store.learning.updateParameters("v3", v3.revision, {
      state: "ROLLED_BACK",
      trafficFraction: 0,
    });
    const before = await everything();
    const [recorded, statements] = await statementsOf(() =>
      e.record(outcome({ parametersVersion: "v3" })),
    );
    expect([recorded, statements]).toEqual([true, 2]);
    expect(e.state.servingVersions()).toEqual(["v2"]);
    const after = await everything();
    const outcomesOf = (s: typeof before, v: string) =>
      s.strategy.find((r) => r.bucket === onlineKey(v, bucket))?.outcomes;
    expect(outcomesOf(after, "v2")).toBe(Number(outcomesOf(before, "v2")) + 1);
    expect(outcomesOf(after, "v3")).toBe(outcomesOf(before, "v3"));
    // v3 chose, but no longer serves: its count stays.
    expect(after.versions).toEqual(before.versions);

    // This process's own version changes update what it assumes: one statement again.
    await e.rollback("v1", "test", "operator");
    expect(e.state.servingVersions()).toEqual(["v1"]);
    await e.state.snapshot("v1");
    const [again, count] = await statementsOf(() => e.record(outcome({ parametersVersion: "v1" })));
    expect([again, count]).toEqual([true, 1]);
    expect((await store.learning.getParameters("v1")).successes).toBe(1);
  });

  it("a version change keeps the outcomes counted since it read the versions", async () => {
    const e = engine();
    const before = await e.state.versions();
    const v1 = before.records.find((v) => v.version === "v1")!;
    // Another replica counts an outcome chosen by v1 after this one read the versions.
    expect(await engine().record(outcome({ parametersVersion: "v1" }))).toBe(true);
    // This one then changes v1 (here its note; a drift verdict writes the same way).
    await e.state.saveVersions(
      before,
      before.records.map((v) => (v.version === "v1" ? { ...v, note: "checked" } : v)),
    );
    const stored = await store.learning.getParameters("v1");
    expect([stored.note, stored.successes]).toEqual(["checked", v1.successes + 1]);
  });
});
