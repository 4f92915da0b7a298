import { describe, expect, it } from "vitest";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { ArmView } from "./arm-stats.js";
import type { DecisionContext } from "./context-bucket.js";
import { epsilonGreedySelector } from "./epsilon-greedy-selector.js";
import { fixedSelector } from "./fixed-selector.js";
import type { Rng } from "./random.js";
import { createRng } from "./random.js";
import type { ArmViews, Selector } from "./selector.js";
import { argmax, rewardPenalty, selectorConfig } from "./selector.js";
import { selectorRegistry } from "./selector-registry.js";
import { thompsonSelector } from "./thompson-selector.js";
import { ucb1Selector } from "./ucb1-selector.js";

const ctx: DecisionContext = { tenantId: "t", goalKind: "k", sizeClass: "s" };
const noPenalty = selectorConfig({ penalty: { latencyWeight: 0, costWeight: 0 } });

function view(successes: number, failures: number, extra: Partial<ArmView> = {}): ArmView {
  return {
    successes,
    failures,
    pulls: successes + failures,
    meanLatencyMs: 0,
    meanCost: 0,
    ...extra,
  };
}

function tally(selector: Selector, names: string[], stats: ArmViews, n: number, rng: Rng) {
  const counts: Record<string, number> = Object.fromEntries(names.map((x) => [x, 0]));
  for (let i = 0; i < n; i++) counts[selector.choose(ctx, names, stats, rng).strategy]!++;
  return counts;
}

/** A Bernoulli bandit run; returns how often each arm was pulled in the last `tail` rounds. */
function runBandit(
  selector: Selector,
  means: number[],
  rounds: number,
  seed: number,
  tail: number,
) {
  const rng = createRng(seed);
  const names = means.map((_, i) => `arm${i}`);
  const stats: Record<string, ArmView> = {};
  const late = new Array(means.length).fill(0);
  for (let t = 0; t < rounds; t++) {
    const { strategy } = selector.choose(ctx, names, stats, rng);
    const i = names.indexOf(strategy);
    const ok = rng.next() < means[i]!;
    const v = stats[strategy] ?? view(0, 0);
    stats[strategy] = view(v.successes + (ok ? 1 : 0), v.failures + (ok ? 0 : 1));
    if (t >= rounds - tail) late[i]++;
  }
  return late.map((n) => n / tail);
}

describe("thompson", () => {
  const thompson = thompsonSelector(noPenalty);

  it("picks the arm with the credibly better posterior, scoring every candidate", () => {
    const rng = createRng(1);
    const stats = { good: view(90, 10), bad: view(10, 90) };
    const choice = thompson.choose(ctx, ["bad", "good"], stats, rng);
    expect(Object.keys(choice.scores).sort()).toEqual(["bad", "good"]);
    expect(choice.reason).toMatch(/^thompson: /);
    expect(tally(thompson, ["bad", "good"], stats, 1000, rng).good).toBeGreaterThan(995);
  });

  it("explores evenly without data", () => {
    const counts = tally(thompson, ["a", "b"], {}, 4000, createRng(2));
    expect(Math.abs(counts.a! - 2000)).toBeLessThan(200);
  });

  it("penalises latency and cost between equally successful strategies", () => {
    const thompsonWithPenalty = thompsonSelector(selectorConfig());
    const stats = {
      fast: view(400, 100, { meanLatencyMs: 500, meanCost: 0.1 }),
      slow: view(400, 100, { meanLatencyMs: 60_000, meanCost: 5 }),
    };
    const counts = tally(thompsonWithPenalty, ["slow", "fast"], stats, 1000, createRng(3));
    expect(counts.fast).toBeGreaterThan(990);
  });

  it("converges on the best arm of a Bernoulli bandit", () => {
    const share = runBandit(thompson, [0.3, 0.5, 0.7], 2000, 11, 500);
    expect(share[2]).toBeGreaterThan(0.9);
  });
});

describe("ucb1", () => {
  const ucb = ucb1Selector(noPenalty);

  it("tries every untried candidate first, in order", () => {
    const rng = createRng(1);
    expect(ucb.choose(ctx, ["a", "b", "c"], {}, rng).strategy).toBe("a");
    expect(ucb.choose(ctx, ["a", "b", "c"], { a: view(1, 0) }, rng).strategy).toBe("b");
    const c = ucb.choose(ctx, ["a", "b", "c"], { a: view(1, 0), b: view(0, 1) }, rng);
    expect(c.strategy).toBe("c");
    expect(c.scores.c).toBe(Number.POSITIVE_INFINITY);
  });

  it("prefers the higher mean, but revisits an arm whose bound has grown", () => {
    const rng = createRng(2);
    expect(ucb.choose(ctx, ["a", "b"], { a: view(80, 20), b: view(20, 80) }, rng).strategy).toBe(
      "a",
    );
    // b has a lower mean but so few observations that its bonus dominates.
    expect(ucb.choose(ctx, ["a", "b"], { a: view(800, 200), b: view(1, 1) }, rng).strategy).toBe(
      "b",
    );
  });

  it("converges on the best arm of a Bernoulli bandit", () => {
    const share = runBandit(ucb, [0.3, 0.5, 0.7], 3000, 12, 500);
    expect(share[2]).toBeGreaterThan(0.75);
  });
});

describe("epsilon-greedy", () => {
  it("explores at rate epsilon and exploits otherwise", () => {
    const eg = epsilonGreedySelector(selectorConfig({ epsilonGreedy: { epsilon: 0.2 } }));
    const stats = { a: view(90, 10), b: view(10, 90) };
    const counts = tally(eg, ["a", "b"], stats, 10_000, createRng(3));
    // Exploration picks b half of the time it explores: 0.2 / 2 = 10%.
    expect(counts.b! / 10_000).toBeGreaterThan(0.08);
    expect(counts.b! / 10_000).toBeLessThan(0.12);
  });

  it("never explores with epsilon 0", () => {
    const eg = epsilonGreedySelector(selectorConfig({ epsilonGreedy: { epsilon: 0 } }));
    const counts = tally(eg, ["a", "b"], { a: view(6, 4), b: view(5, 5) }, 500, createRng(4));
    expect(counts.a).toBe(500);
  });
});

describe("fixed", () => {
  it("picks the configured strategy, or the first candidate when it is not offered", () => {
    const rng = createRng();
    const f = fixedSelector(selectorConfig({ fixed: { strategy: "solo" } }));
    expect(f.choose(ctx, ["team", "solo"], {}, rng)).toMatchObject({
      strategy: "solo",
      scores: { solo: 1, team: 0 },
    });
    const missing = f.choose(ctx, ["team", "duo"], {}, rng);
    expect(missing.strategy).toBe("team");
    expect(missing.reason).toMatch(/not offered/);
    expect(fixedSelector(selectorConfig()).choose(ctx, ["x", "y"], {}, rng).strategy).toBe("x");
  });
});

describe("registry and helpers", () => {
  it("holds the built-ins, caches per config and rejects unknown names with NOT_FOUND", () => {
    const config = selectorConfig();
    const registry = selectorRegistry(config);
    expect(registry.names().sort()).toEqual([
      "contextual",
      "epsilon-greedy",
      "fixed",
      "thompson",
      "ucb1",
    ]);
    expect(selectorRegistry(config)).toBe(registry);
    expect(registry.get("ucb1").name).toBe("ucb1");
    try {
      registry.get("nope");
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(MeshError);
      expect((err as MeshError).code).toBe(Code.NotFound);
    }
  });

  it("accepts plugin selectors", () => {
    const always: Selector = {
      name: "last",
      choose: (_c, cands) => ({ strategy: cands.at(-1)!, scores: {}, reason: "last" }),
    };
    const registry = selectorRegistry(selectorConfig(), { last: () => always });
    expect(registry.get("last").choose(ctx, ["a", "b"], {}, createRng()).strategy).toBe("b");
  });

  it("validates configuration with INVALID_ARGUMENT", () => {
    expect(() => selectorConfig({ epsilonGreedy: { epsilon: 2 } })).toThrow(/epsilon/);
    expect(() => selectorConfig({ prior: { alpha: 0 } })).toThrow(MeshError);
  });

  it("keeps penalties bounded by their weights", () => {
    const p = selectorConfig().penalty;
    expect(rewardPenalty(view(1, 1, { meanLatencyMs: 1e12, meanCost: 1e12 }), p)).toBeLessThan(0.2);
    expect(rewardPenalty(view(1, 1, { meanLatencyMs: 10_000 }), p)).toBeCloseTo(0.05);
  });

  it("breaks argmax ties uniformly", () => {
    const rng = createRng(5);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[argmax([1, 0, 1], rng)]!++;
    expect(counts[1]).toBe(0);
    expect(Math.abs(counts[0]! - 1500)).toBeLessThan(150);
  });
});
