/**
 * Warm start of a cold bucket from similar past experiences: each neighbour
 * adds `similarity × decay` of a pseudo-observation to its strategy, capped
 * per strategy so that real observations soon outweigh borrowed ones.
 *
 * @example
 * const neighbours = similarExperiences(contextVector(ctx), experiences, ["solo", "team"], 20);
 * const priors = warmStartPriors(neighbours, ["solo", "team"], { now });
 * // → { solo: { successes: 6.1, failures: 0.4, ... }, team: { ... } }
 */
import type { ArmView } from "./arm-stats.js";
import { decayFactor } from "./decay.js";
import type { Neighbour } from "./feature-hashing.js";
import { nearest } from "./feature-hashing.js";

/** What warm start needs of a past experience. */
export interface ExperienceSample {
  strategy: string;
  success: boolean;
  latencyMs?: number;
  cost?: number;
  /** Epoch milliseconds; with `now` and `halfLifeMs`, older experiences count less. */
  finishedAt?: number;
}

export interface WarmStartOptions {
  /** Upper bound of pseudo-observations per strategy; default 10. */
  maxPseudoCount?: number;
  /** Neighbours less similar than this are ignored; default 0.3. */
  minSimilarity?: number;
  /** Epoch milliseconds "now" for decay; without it no decay is applied. */
  now?: number;
  /** Half-life of the decay; 0 means none. Default 0. */
  halfLifeMs?: number;
}

/** Pseudo-observations per candidate (only candidates with similar experiences appear). */
export function warmStartPriors(
  neighbours: readonly Neighbour<ExperienceSample>[],
  candidates: readonly string[],
  options: WarmStartOptions = {},
): Record<string, ArmView> {
  const cap = options.maxPseudoCount ?? 10;
  const minSimilarity = options.minSimilarity ?? 0.3;
  const wanted = new Set(candidates);
  const acc = new Map<string, { s: number; f: number; lat: number; cost: number; n: number }>();
  for (const { item, similarity } of neighbours) {
    if (!wanted.has(item.strategy) || !(similarity >= minSimilarity)) continue;
    const age =
      options.now !== undefined && item.finishedAt !== undefined
        ? options.now - item.finishedAt
        : 0;
    const w = similarity * decayFactor(age, options.halfLifeMs ?? 0);
    const a = acc.get(item.strategy) ?? { s: 0, f: 0, lat: 0, cost: 0, n: 0 };
    if (item.success) a.s += w;
    else a.f += w;
    a.lat += w * (item.latencyMs ?? 0);
    a.cost += w * (item.cost ?? 0);
    a.n += 1;
    acc.set(item.strategy, a);
  }
  const priors: Record<string, ArmView> = {};
  for (const [strategy, a] of acc) {
    const total = a.s + a.f;
    if (total <= 0) continue;
    const scale = total > cap ? cap / total : 1;
    priors[strategy] = {
      successes: a.s * scale,
      failures: a.f * scale,
      pulls: 0,
      meanLatencyMs: a.lat / total,
      meanCost: a.cost / total,
    };
  }
  return priors;
}

/**
 * The `kPerStrategy` experiences most similar to `query` for each candidate.
 * Per strategy, because a plain top-k is dominated by whatever strategy won in
 * the past and leaves the others without evidence (so they get explored anew).
 * A store does the same with `ROW_NUMBER() OVER (PARTITION BY strategy ...)`.
 */
export function similarExperiences<T extends ExperienceSample & { vector: ArrayLike<number> }>(
  query: ArrayLike<number>,
  experiences: Iterable<T>,
  candidates: readonly string[],
  kPerStrategy: number,
  minSimilarity = 0,
): Neighbour<T>[] {
  const wanted = new Set(candidates);
  const byStrategy = new Map<string, T[]>();
  for (const e of experiences) {
    if (!wanted.has(e.strategy)) continue;
    const list = byStrategy.get(e.strategy);
    if (list) list.push(e);
    else byStrategy.set(e.strategy, [e]);
  }
  const found: Neighbour<T>[] = [];
  for (const list of byStrategy.values()) {
    found.push(...nearest(query, list, kPerStrategy, minSimilarity));
  }
  return found.sort((a, b) => b.similarity - a.similarity);
}
