/**
 * Warm start finds similar experience by a bounded query in PostgreSQL (the
 * similarity signature, issue 25), not by reading the newest rows.
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DecisionContextSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import type { Store } from "../../lib/store/index.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres, runId } from "../../lib/testing/infra.js";
import { contextVector, similaritySignature } from "./domain/index.js";
import { createLearningEngine } from "./learning-engine.js";

const pg = await needPostgres();
const tenantId = "ws";
const sales = "summarize the quarterly sales report for the board";
const poem = "translate this poem about autumn rain into japanese";

describe.skipIf(!pg)("warm start by a similarity query", () => {
  let t: TestStore;
  let store: Store;

  const outcome = (text: string, strategy: string, success: boolean, sizeClass = "m") =>
    create(OutcomeSchema, {
      goalId: runId("g"),
      context: { tenantId, goalKind: "report", sizeClass, text },
      strategy,
      success,
      latency: durationFromMs(500),
      finishedAt: timestampFromMs(Date.now()),
    });

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: tenantId, displayName: "WS" });
    const e = createLearningEngine({ store, log: createLogger({ name: "t", level: "silent" }) });
    // In bucket size=m: "team" works for sales reports, "solo" for poems.
    for (let i = 0; i < 25; i++) {
      await e.record(outcome(`${sales} ${i}`, "team", true));
      await e.record(outcome(`${poem} ${i}`, "solo", true));
      await e.record(outcome(`${sales} ${i}`, "solo", false));
    }
  });
  afterAll(() => t?.cleanup());

  it("stores each experience with its signature and finds the nearest by Hamming distance", async () => {
    const [{ n }] = (await store.orm.em
      .fork()
      .execute(
        "select count(*)::int as n from experiences where tenant_id = ? and signature is not null and cardinality(lsh_bands) = 8",
        [tenantId],
      )) as [{ n: number }];
    expect(n).toBe(75);
    const q = (text: string) =>
      similaritySignature(
        contextVector({ tenantId, goalKind: "report", sizeClass: "s", text, features: {} }),
      );
    const repo = store.tenant(tenantId).experiences;
    const near = await repo.similar({
      goalKind: "report",
      strategies: ["team", "solo"],
      signature: q(`${sales} for investors`),
      limit: 10,
    });
    expect(near).toHaveLength(10);
    expect(
      near.filter((e) =>
        (e.outcome as { context?: { text?: string } }).context?.text?.includes("quarterly"),
      ).length,
    ).toBeGreaterThanOrEqual(9);
    expect(
      await repo.similar({
        goalKind: "other",
        strategies: ["team"],
        signature: q(sales),
        limit: 10,
      }),
    ).toEqual([]);
    await expect(
      repo.similar({
        goalKind: "report",
        strategies: ["team"],
        signature: { hash: "1; drop table x", bands: [1] },
        limit: 5,
      }),
    ).rejects.toSatisfy((e) => e instanceof MeshError && e.code === Code.InvalidArgument);
  });

  it("warm-starts a cold bucket from the similar goals' outcomes", async () => {
    const e = createLearningEngine({ store, log: createLogger({ name: "t", level: "silent" }) });
    let team = 0;
    for (let i = 0; i < 20; i++) {
      const r = await e.choose({
        context: create(DecisionContextSchema, {
          tenantId,
          goalKind: "report",
          sizeClass: "s",
          text: `${sales} for investors`,
        }),
        candidates: ["solo", "team"],
      });
      expect(r.warmStarted).toBe(true);
      if (r.strategy === "team") team++;
    }
    expect(team).toBeGreaterThanOrEqual(17);
  });
});
