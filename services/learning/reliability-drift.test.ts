/**
 * The drift guard reacts to an agent that degrades (issue 25), against the
 * real PostgreSQL: strategy "solo" runs on agent a-solo and succeeds 90 % of
 * the time, "team" on agent a-team at 70 %; after 150 goals a-solo drops to
 * 10 %. With the reliability trigger the statistics of "solo" are discounted
 * a few failures after the drop and the choice moves to "team" much sooner
 * than when they must be outweighed by solo's own failures.
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
import { createRng } from "./domain/index.js";
import { createLearningEngine } from "./learning-engine.js";

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
    for (const id of ["with-guard", "without-guard"]) {
      await store.tenants.create({ id, displayName: id });
    }
  });
  afterAll(() => t?.cleanup());

  /** The goals after the drop that still chose "solo", and the goal after which "team" held 9 of 10. */
  const simulate = async (tenantId: string, guard: boolean) => {
    const engine = createLearningEngine({
      store,
      log: createLogger({ name: "learning-test", level: "silent" }),
      driftEvery: 1e9,
      rng: createRng("choices"),
      ...(guard ? {} : { reliabilityDrift: false as const }),
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
          agentResults: [{ ...agent, success, latency: durationFromMs(90) }],
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
    const withGuard = await simulate("with-guard", true);
    const withoutGuard = await simulate("without-guard", false);
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
});
