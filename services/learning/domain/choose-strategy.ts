/**
 * One strategy decision, end to end and without I/O: validate the candidates,
 * resolve which selector runs (feature flag, else the version's default), read
 * the bucket's statistics as of now, add warm-start priors when the bucket is
 * cold, and let the selector choose. The result has the fields of
 * `agentmesh.v1.ChooseStrategyResponse`.
 *
 * @example
 * const route = routeVersion(versions, routingKey(ctx));
 * const params = snapshots.get(route.version) ?? emptyParameters();
 * const neighbours = needsWarmStart(params, ctx, candidates, now)
 *   ? await store.similarExperiences(contextVector(ctx), candidates, params.config.warmStart.k)
 *   : undefined;
 * const result = chooseStrategy({ context: ctx, candidates, parameters: params,
 *   canary: route.canary, flags, neighbours, rng, now });
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { ArmView } from "./arm-stats.js";
import { addViews, armView } from "./arm-stats.js";
import type { DecisionContext } from "./context-bucket.js";
import { bucketKey } from "./context-bucket.js";
import type { FeatureFlag } from "./feature-flags.js";
import { resolveFlag, SELECTOR_FLAG } from "./feature-flags.js";
import type { Neighbour } from "./feature-hashing.js";
import type { ParametersSnapshot } from "./parameters.js";
import type { Rng } from "./random.js";
import type { SelectorRegistry } from "./selector-registry.js";
import { selectorRegistry } from "./selector-registry.js";
import type { ExperienceSample } from "./warm-start.js";
import { warmStartPriors } from "./warm-start.js";

/** At most this many candidates per decision. */
export const MAX_CANDIDATES = 64;

export interface ChooseStrategyInput {
  context: DecisionContext;
  /** Strategies to choose among: at least one, unique, non-empty. */
  candidates: readonly string[];
  /** The version that decides (see `routeVersion`). */
  parameters: ParametersSnapshot;
  /** Whether `parameters` is a canary version; echoed in the result. */
  canary?: boolean;
  /** Feature flags; `learning.selector` picks the selector. Default none. */
  flags?: readonly FeatureFlag[];
  /**
   * Similar experiences for warm start (see `similarExperiences`: up to
   * `config.warmStart.k` per candidate); used only when the bucket is cold.
   */
  neighbours?: readonly Neighbour<ExperienceSample>[];
  rng: Rng;
  /** Epoch milliseconds. */
  now: number;
  /** Default: the built-in selectors for `parameters.config`. */
  registry?: SelectorRegistry;
}

/** The decision (the fields of ChooseStrategyResponse, plus bucket and warm start). */
export interface ChooseStrategyResult {
  strategy: string;
  selector: string;
  parametersVersion: string;
  scores: Record<string, number>;
  reason: string;
  canary: boolean;
  bucket: string;
  /** Whether warm-start priors from similar experiences were added. */
  warmStarted: boolean;
}

/**
 * The key canary routing hashes for a decision. ChooseStrategyRequest carries
 * no goal id, so callers pass it as the `goal_id` feature; without one the
 * tenant and text stand in (stable for retries of the same goal text).
 */
export function routingKey(context: DecisionContext): string {
  const id = context.features?.goal_id || context.features?.goalId;
  return id ? `goal:${id}` : `text:${context.tenantId}\u0000${context.text ?? ""}`;
}

/** Throws INVALID_ARGUMENT unless candidates are 1..64 unique, non-blank names. */
export function validateCandidates(candidates: readonly string[]): void {
  if (!Array.isArray(candidates) || candidates.length === 0) {
    throw new MeshError(Code.InvalidArgument, "at least one candidate strategy is required");
  }
  if (candidates.length > MAX_CANDIDATES) {
    throw new MeshError(
      Code.InvalidArgument,
      `at most ${MAX_CANDIDATES} candidate strategies, got ${candidates.length}`,
    );
  }
  const seen = new Set<string>();
  for (const c of candidates) {
    if (typeof c !== "string" || c.trim() === "") {
      throw new MeshError(Code.InvalidArgument, "candidate strategy names must not be empty");
    }
    if (seen.has(c)) {
      throw new MeshError(Code.InvalidArgument, `candidate strategy "${c}" is listed twice`);
    }
    seen.add(c);
  }
}

/** The candidates' statistics in the context's bucket as of `now`. */
export function bucketViews(
  parameters: ParametersSnapshot,
  context: DecisionContext,
  candidates: readonly string[],
  now: number,
): Record<string, ArmView> {
  const bucket = parameters.buckets[bucketKey(context)];
  const views: Record<string, ArmView> = {};
  for (const c of candidates) views[c] = armView(bucket?.[c], now, parameters.halfLifeMs);
  return views;
}

/**
 * The candidates' statistics summed over every bucket of the context's tenant:
 * the shared level the contextual selector's priors come from.
 */
export function sharedViews(
  parameters: ParametersSnapshot,
  context: DecisionContext,
  candidates: readonly string[],
  now: number,
): Record<string, ArmView> {
  const views: Record<string, ArmView> = {};
  for (const c of candidates) views[c] = armView(undefined, now, parameters.halfLifeMs);
  // Bucket keys start with the URI-encoded tenant (see `bucketKey`): a prefix test suffices.
  const prefix = `tenant=${encodeURIComponent(context.tenantId)}/`;
  for (const [key, bucket] of Object.entries(parameters.buckets)) {
    if (!key.startsWith(prefix)) continue;
    for (const c of candidates) {
      const row = bucket[c];
      if (row) views[c] = addViews(views[c]!, armView(row, now, parameters.halfLifeMs));
    }
  }
  return views;
}

function coldness(views: Record<string, ArmView>): number {
  let n = 0;
  for (const v of Object.values(views)) n += v.successes + v.failures;
  return n;
}

/**
 * Whether the bucket is cold for these candidates, i.e. whether the caller
 * should look up similar experiences before `chooseStrategy`.
 */
export function needsWarmStart(
  parameters: ParametersSnapshot,
  context: DecisionContext,
  candidates: readonly string[],
  now: number,
): boolean {
  return (
    parameters.config.warmStart.k > 0 &&
    coldness(bucketViews(parameters, context, candidates, now)) <
      parameters.config.warmStart.coldBelow
  );
}

/** Chooses a strategy; INVALID_ARGUMENT for bad candidates. */
export function chooseStrategy(input: ChooseStrategyInput): ChooseStrategyResult {
  const { context, candidates, parameters, now } = input;
  validateCandidates(candidates);
  const config = parameters.config;
  const registry = input.registry ?? selectorRegistry(config);

  let selectorName = config.selector;
  let note = "";
  const flag = resolveFlag(input.flags ?? [], SELECTOR_FLAG, context);
  if (flag && registry.has(flag.value)) selectorName = flag.value;
  else if (flag) note = `; flag named unknown selector "${flag.value}", used ${selectorName}`;
  const selector = registry.get(selectorName);

  let views = bucketViews(parameters, context, candidates, now);
  let warmStarted = false;
  const ws = config.warmStart;
  const observed = coldness(views);
  if (input.neighbours && input.neighbours.length > 0 && observed < ws.coldBelow) {
    // Borrowed evidence fades linearly as the bucket's own grows, so the
    // switch from warm to plain statistics is not a jump back to exploring.
    const fade = 1 - observed / ws.coldBelow;
    const priors = warmStartPriors(input.neighbours, candidates, {
      maxPseudoCount: ws.maxPseudoCount * fade,
      minSimilarity: ws.minSimilarity,
      now,
      halfLifeMs: parameters.halfLifeMs,
    });
    if (Object.keys(priors).length > 0) {
      warmStarted = true;
      const merged: Record<string, ArmView> = {};
      for (const c of candidates)
        merged[c] = priors[c] ? addViews(views[c]!, priors[c]) : views[c]!;
      views = merged;
      note += "; warm-started from similar experiences";
    }
  }

  const shared = selector.usesShared
    ? sharedViews(parameters, context, candidates, now)
    : undefined;
  const choice = selector.choose(context, candidates, views, input.rng, shared);
  if (!candidates.includes(choice.strategy)) {
    throw new MeshError(
      Code.Internal,
      `selector ${selector.name} chose "${choice.strategy}", which is not a candidate`,
    );
  }
  return {
    strategy: choice.strategy,
    selector: selector.name,
    parametersVersion: parameters.version,
    scores: choice.scores,
    reason: choice.reason + note,
    canary: input.canary ?? false,
    bucket: bucketKey(context),
    warmStarted,
  };
}
