/**
 * Strategy selection on a synthetic Bernoulli bandit: cumulative pseudo-regret
 * per selector (median and mean over seeds) beside the Lai–Robbins asymptotic
 * lower bound of the instance, Σ over suboptimal arms of (μ* − μᵢ)/KL(μᵢ, μ*) · ln T.
 *
 * Every selector sees the same rewards (common random numbers: the n-th pull
 * of arm i has the same outcome for all selectors in a seed), and the arm
 * order is shuffled per seed so "fixed" and tie-breaking favour no arm.
 *
 * Then the contextual instance (`learning-contextual.ts`): 8 context clusters,
 * a strategy degrading at goal 2,500, success as a fraction of the oracle.
 *
 * `agentmesh bench learning` (T = 10,000, 20 seeds; contextual T = 5,000, 20
 * seeds); `--smoke`: T = 1,000, 3 seeds, contextual 3 seeds.
 */
import { performance } from "node:perf_hooks";
import type { ArmView } from "../services/learning/domain/arm-stats.js";
import type { DecisionContext } from "../services/learning/domain/context-bucket.js";
import type { Rng } from "../services/learning/domain/random.js";
import { createRng, randomInt } from "../services/learning/domain/random.js";
import { selectorConfig } from "../services/learning/domain/selector.js";
import { selectorRegistry } from "../services/learning/domain/selector-registry.js";
import type { Benchmark } from "./benchmark.js";
import {
  CONTEXTUAL_TARGETS,
  contextualBench,
  contextualTargetsMet,
} from "./learning-contextual.js";

/** Success probabilities of the instance; the first is the best arm. */
const means = [0.9, 0.8, 0.7, 0.6, 0.5];
const selectors = ["thompson", "ucb1", "epsilon-greedy", "fixed"];

/** Bernoulli KL divergence KL(p, q). */
function klBernoulli(p: number, q: number): number {
  const term = (a: number, b: number) => (a === 0 ? 0 : a * Math.log(a / b));
  return term(p, q) + term(1 - p, 1 - q);
}

/** The Lai–Robbins bound of a Bernoulli instance at horizon T. */
export function laiRobbinsBound(mu: readonly number[], horizon: number): number {
  const best = Math.max(...mu);
  let c = 0;
  for (const m of mu) if (m < best) c += (best - m) / klBernoulli(m, best);
  return c * Math.log(horizon);
}

function shuffled<T>(xs: readonly T[], rng: Rng): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

const ctx: DecisionContext = { tenantId: "bench", goalKind: "bandit", sizeClass: "s" };

/** One run of one selector; returns pseudo-regret and time spent choosing. */
function run(
  selectorName: string,
  seed: number,
  horizon: number,
): { regret: number; chooseMs: number } {
  const config = selectorConfig({ penalty: { latencyWeight: 0, costWeight: 0 } });
  const selector = selectorRegistry(config).get(selectorName);
  const order = shuffled(
    means.map((_, i) => i),
    createRng(`order-${seed}`),
  );
  const names = order.map((i) => `arm${i}`);
  const armMean = new Map(order.map((i) => [`arm${i}`, means[i]!]));
  // Common random numbers: one reward stream per arm and seed, shared by all selectors.
  const streams = new Map(order.map((i) => [`arm${i}`, createRng(`reward-${seed}-${i}`)]));
  const rng = createRng(`${selectorName}-${seed}`);
  const best = Math.max(...means);
  const stats: Record<string, ArmView> = {};
  for (const n of names)
    stats[n] = { successes: 0, failures: 0, pulls: 0, meanLatencyMs: 0, meanCost: 0 };
  let regret = 0;
  let chooseMs = 0;
  for (let t = 0; t < horizon; t++) {
    const start = performance.now();
    const { strategy } = selector.choose(ctx, names, stats, rng);
    chooseMs += performance.now() - start;
    const mu = armMean.get(strategy)!;
    const s = stats[strategy]!;
    if (streams.get(strategy)!.next() < mu) s.successes++;
    else s.failures++;
    s.pulls++;
    regret += best - mu;
  }
  return { regret, chooseMs };
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));

export const learning: Benchmark = {
  name: "learning",
  description:
    "Bernoulli bandit (5 arms): regret per selector vs the Lai–Robbins bound; contextual instance vs the oracle",
  async run({ smoke }) {
    const horizon = smoke ? 1_000 : 10_000;
    const seeds = smoke ? 3 : 20;
    const bound = laiRobbinsBound(means, horizon);
    const results: Record<string, Record<string, number>> = {};
    for (const name of selectors) {
      const regrets: number[] = [];
      let ms = 0;
      for (let seed = 1; seed <= seeds; seed++) {
        const r = run(name, seed, horizon);
        regrets.push(r.regret);
        ms += r.chooseMs;
      }
      regrets.sort((a, b) => a - b);
      results[name] = {
        medianRegret: round(quantile(regrets, 0.5)),
        meanRegret: round(regrets.reduce((a, b) => a + b, 0) / regrets.length),
        p10Regret: round(quantile(regrets, 0.1)),
        p90Regret: round(quantile(regrets, 0.9)),
        medianToBound: round(quantile(regrets, 0.5) / bound, 3),
        usPerChoice: round((ms * 1000) / (horizon * seeds), 3),
      };
    }
    const thompson = results.thompson!.medianRegret!;
    const lowest = Object.entries(results).every(
      ([name, r]) => name === "thompson" || thompson <= r.medianRegret!,
    );
    const ratio = thompson / bound;
    const contextual = contextualBench(seeds);
    return {
      instance: { arms: means, horizon, seeds, regret: "pseudo-regret Σ(μ* − μ_chosen)" },
      laiRobbinsBound: round(bound),
      selectors: results,
      thompsonMedianToBound: round(ratio, 3),
      thompsonLowest: lowest,
      target: "Thompson median regret ≤ 2× the bound and the lowest of the selectors",
      targetMet: ratio <= 2 && lowest,
      contextual: {
        instance: "4 strategies, 8 clusters, T = 5,000, strategy 0 → 0.3 at goal 2,500",
        seeds,
        selectors: contextual,
        targets: CONTEXTUAL_TARGETS,
        targetsMet: contextualTargetsMet(contextual),
      },
    };
  },
};
