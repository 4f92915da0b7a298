/**
 * Contextual learning through the whole mesh (issue 25): goals of 8 contexts
 * (4 kinds × 2 input sizes), four strategies whose agent succeeds with a
 * per-context probability (`bench/learning-mesh.ts`). The learner tenant's
 * strategies are chosen by the `contextual` selector (tenant flag: it is the
 * selector under test; the shipped default, Thompson, is covered by
 * e2e-learning.test.ts); an oracle tenant runs the context's best strategy
 * in the same run.
 *
 * Asserted on the expected success (the chosen strategy's true probability),
 * which carries the choice without the coin flips of the agent: the last two
 * windows are above the first and at least 85 % of the oracle's. The realised
 * rates are printed beside it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeWindow, runLearningMesh, simAgent } from "../bench/learning-mesh.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

/**
 * The last 200 goals' expected success, as a fraction of the oracle's, at
 * least. Measured 0.89–0.96 on a 2-core machine at load 9–28 (the first 100
 * goals: 0.78–0.87); the same selector without the mesh (sequential, no
 * stale statistics) is at 0.93 there (median of 20 seeds) and reaches 0.96
 * by goal 1,000. 0.85 leaves room for a slow seed and for learning under load.
 */
const finalFraction = 0.85;

describe.skipIf(!pg || !nats)("e2e: contextual learning approaches the oracle", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: simAgent(7) }],
    });
  }, 60_000);
  afterAll(() => mesh?.stop());

  it(`rises from the first 100 goals to ≥ ${finalFraction * 100} % of the oracle over the last 200`, {
    timeout: 180_000,
  }, async () => {
    const t0 = Date.now();
    const run = await runLearningMesh(mesh, {
      goals: 500,
      oracleEvery: 4,
      concurrency: 4,
      seed: 7,
      onWindow: (w) => console.log(`learning e2e (contextual): ${describeWindow(w)}`),
    });
    console.log(
      `learning e2e (contextual): oracle tenant realised ${run.oracleRealised.success} over ${run.oracleRealised.goals} goals; ` +
        `best strategy without context ${run.bestWithoutContext}, random ${run.random}; ` +
        `selectors ${JSON.stringify(run.selectors)}; ${run.goalsPerSecond} goals/s, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    expect(run.errors, run.firstError).toBe(0);
    // On a loaded machine a ChooseStrategy call may miss the planner's 500 ms
    // deadline, and the planner falls back to the first strategy: allowed, not the rule
    // (5–26 of 500 measured at load 20–25).
    expect(run.selectors.contextual ?? 0).toBeGreaterThanOrEqual(400);
    expect(run.windows).toHaveLength(5);
    const first = run.windows[0]!;
    // Two windows, not one: half the noise of the context mix and of sampling.
    const last = run.windows.slice(-2);
    const mean = (f: (w: (typeof last)[number]) => number) => (f(last[0]!) + f(last[1]!)) / 2;
    expect(mean((w) => w.fraction)).toBeGreaterThan(first.fraction);
    expect(mean((w) => w.fraction)).toBeGreaterThanOrEqual(finalFraction);
    // Above what no context could give: the contexts were learned, not one favourite.
    expect(mean((w) => w.expected)).toBeGreaterThan(run.bestWithoutContext);
  });
});
