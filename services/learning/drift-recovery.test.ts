/**
 * Recovery from drift in the service (issue 25), against the real
 * PostgreSQL: strategy "solo" runs on agent a-solo and succeeds 90 % of the
 * time, "team" on agent a-team at 70 %; after 150 goals "solo" drops to 10 %.
 *
 * - The drift guard on agent reliability: a-solo's results show the drop, and
 *   the statistics of "solo" are discounted a few failures after it.
 * - Forgetting per outcome in the stored statistics (no agent results
 *   reported, so only the strategy's own outcomes tell): its recent counts fall
 *   below its long ones and replace them.
 *
 * Either moves the choice to "team" much sooner than when solo's long record
 * must be outweighed by its own failures (both off).
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionContextSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { createLogger } from "../../lib/log/logger.js";
import type { Store } from "../../lib/store/index.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import type { ArmView } from "./domain/arm-stats.js";
import { createRng, DEFAULT_FORGETTING, observeWithReset } from "./domain/index.js";
import { createLearningEngine, type LearningEngineOptions } from "./learning-engine.js";

const pg = await needPostgres();

const before = 150;
const after = 60;
const agents = {
  solo: { agentId: "a-solo", capability: "text.summarize" },
  team: { agentId: "a-team", capability: "text.translate" },
};

describe.skipIf(!pg)("learning engine: drift guard on agent reliability", () => {
  let t: TestStore;
  let store: Store;
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    for (const id of ["with-guard", "without-guard", "forgetting", "no-forgetting"]) {
      await store.tenants.create({ id, displayName: id });
    }
  });
  afterAll(() => t?.cleanup());

  /** The goals after the drop that still chose "solo", and the goal after which "team" held 9 of 10. */
  const simulate = async (
    tenantId: string,
    options: Pick<LearningEngineOptions, "reliabilityDrift" | "forgetting">,
    reportAgents = true,
  ) => {
    const engine = createLearningEngine({
      store,
      log: createLogger({ name: "learning-test", level: "silent" }),
      driftEvery: 1e9,
      rng: createRng("choices"),
      ...options,
    });
    // The same success stream for both runs (common random numbers).
    const coin = createRng("outcomes");
    const context = create(DecisionContextSchema, {
      tenantId,
      goalKind: "report",
      sizeClass: "s",
      text: "summarize the quarter",
    });
    const chosen: string[] = [];
    for (let i = 0; i < before + after; i++) {
      const goalId = `${tenantId}-${i}`;
      const { strategy, parametersVersion } = await engine.choose({
        context,
        candidates: ["solo", "team"],
        goalId,
      });
      const p = strategy === "solo" ? (i < before ? 0.9 : 0.1) : 0.7;
      const success = coin.next() < p;
      const agent = agents[strategy as keyof typeof agents];
      await engine.record(
        create(OutcomeSchema, {
          goalId,
          context,
          strategy,
          parametersVersion,
          success,
          latency: durationFromMs(100),
          finishedAt: timestampFromMs(Date.now()),
          agentResults: reportAgents ? [{ ...agent, success, latency: durationFromMs(90) }] : [],
        }),
      );
      chosen.push(strategy);
    }
    const tail = chosen.slice(before);
    let settled = tail.length;
    for (let end = 10; end <= tail.length; end++) {
      if (tail.slice(end - 10, end).filter((s) => s === "team").length >= 9) {
        settled = end;
        break;
      }
    }
    return { soloAfterDrop: tail.filter((s) => s === "solo").length, settled };
  };

  it("discounts the degraded agent's strategies and recovers faster than without", {
    timeout: 120_000,
  }, async () => {
    // Forgetting per outcome off in both, to see the guard alone.
    const withGuard = await simulate("with-guard", { forgetting: false });
    const withoutGuard = await simulate("without-guard", {
      forgetting: false,
      reliabilityDrift: false,
    });
    console.log(
      `reliability drift: after the drop "solo" chosen ${withGuard.soloAfterDrop}/${after} with the guard ` +
        `(team 9 of 10 after ${withGuard.settled} goals), ${withoutGuard.soloAfterDrop}/${after} without (${withoutGuard.settled})`,
    );
    expect(withGuard.soloAfterDrop).toBeLessThan(withoutGuard.soloAfterDrop / 2);
    expect(withGuard.settled).toBeLessThan(withoutGuard.settled);

    const audits = (await store.audit.list({ limit: 1000 })).filter(
      (a) => a.action === "learning.reliability.dropped",
    );
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({ resource: "agents/a-solo" });
    expect(audits[0]!.details.strategies).toEqual(["with-guard/report/solo"]);
  });

  it("forgets per outcome: a strategy that degrades is replaced by its recent record", {
    timeout: 120_000,
  }, async () => {
    // The shipped defaults (forgetting and the guard on), with no agent results to react to.
    const forgetting = await simulate("forgetting", {}, false);
    const none = await simulate("no-forgetting", { forgetting: false }, false);
    console.log(
      `forgetting per outcome: after the drop "solo" chosen ${forgetting.soloAfterDrop}/${after} ` +
        `(team 9 of 10 after ${forgetting.settled} goals), ${none.soloAfterDrop}/${after} without (${none.settled})`,
    );
    expect(forgetting.soloAfterDrop).toBeLessThan(none.soloAfterDrop / 2);
    expect(forgetting.settled).toBeLessThan(none.settled);
    const [row] = (await store.learning.strategyStats({ tenantId: "forgetting" })).filter(
      (r) => r.strategy === "solo",
    );
    // Replaced by the recent counts: solo's long record is gone, its rate now low.
    expect(row!.successes / (row!.successes + row!.failures)).toBeLessThan(0.5);
    expect(row!.successes + row!.failures).toBeLessThan(20);
  });

  it("stores forgetting exactly as the domain's observeWithReset computes it", async () => {
    const coin = createRng("sequence");
    const long: Record<string, ArmView> = {};
    const recent: Record<string, ArmView> = {};
    let resets = 0;
    for (let i = 0; i < 120; i++) {
      // 90 % then 10 %: one reset expected after the change, none from bad luck before.
      const success = coin.next() < (i < 80 ? 0.9 : 0.1);
      if (observeWithReset(long, recent, "s", success)) resets++;
      const row = await store.learning.recordStrategyOutcome({
        bucket: "forgetting-parity",
        strategy: "s",
        success,
        latencyMs: 1,
        forgetting: DEFAULT_FORGETTING,
      });
      expect(row.successes).toBeCloseTo(long.s!.successes, 9);
      expect(row.failures).toBeCloseTo(long.s!.failures, 9);
      expect(row.recentSuccesses).toBeCloseTo(recent.s!.successes, 9);
      expect(row.recentFailures).toBeCloseTo(recent.s!.failures, 9);
    }
    expect(resets).toBeGreaterThanOrEqual(1);
  });
});
