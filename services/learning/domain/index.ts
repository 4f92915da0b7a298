/**
 * The learning service's domain core: pure, network-free and deterministic
 * (every random choice takes a seeded `Rng`). The RPC handlers and the store
 * adapter call these functions and persist the plain objects they return.
 *
 * @example
 * const rng = createRng(Date.now());
 * const route = routeVersion(versions, routingKey(ctx)) ?? { version: "v0", canary: false };
 * const decision = chooseStrategy({ context: ctx, candidates: ["solo", "team"],
 *   parameters: snapshot, canary: route.canary, flags, rng, now: Date.now() });
 */
export type { ArmObservation, ArmStats, ArmView } from "./arm-stats.js";
export { addViews, armView, observeArm } from "./arm-stats.js";
export type { ChooseStrategyInput, ChooseStrategyResult } from "./choose-strategy.js";
export {
  bucketViews,
  chooseStrategy,
  MAX_CANDIDATES,
  needsWarmStart,
  routingKey,
  sharedViews,
  validateCandidates,
} from "./choose-strategy.js";
export type { Bucket, DecisionContext } from "./context-bucket.js";
export { bucketKey, bucketOf, parseBucketKey, sizeClassOf } from "./context-bucket.js";
export { contextualPosterior, contextualSelector } from "./contextual-selector.js";
export { DAY_MS, DEFAULT_HALF_LIFE_MS, decayFactor, HOUR_MS } from "./decay.js";
export type { ResetOptions } from "./discounting.js";
export {
  DEFAULT_DISCOUNT,
  DEFAULT_FORGETTING,
  effectiveMemory,
  observeDiscounted,
  observeWithReset,
} from "./discounting.js";
export type { Counts, DriftAction, DriftGuardOptions, DriftVerdict } from "./drift-guard.js";
export { evaluateCanary } from "./drift-guard.js";
export type { FeatureFlag, FlagScope } from "./feature-flags.js";
export {
  CANARY_FLAG,
  CANARY_FRACTION_FLAG,
  DEFAULT_CANARY_FRACTION,
  resolveCanaryFraction,
  resolveFlag,
  SELECTOR_FLAG,
} from "./feature-flags.js";
export type { FeatureHashOptions, Neighbour } from "./feature-hashing.js";
export {
  contextVector,
  cosineSimilarity,
  FEATURE_DIM,
  FEATURE_VERSION,
  featureVector,
  nearest,
  tokenize,
} from "./feature-hashing.js";
export type { GoalFeatures } from "./goal-features.js";
export { contextKey, goalFeatures, inputShape } from "./goal-features.js";
export type { AgentOutcome, OutcomeRecord } from "./outcome.js";
export { armObservation, validateOutcome } from "./outcome.js";
export type {
  ParametersState,
  PublishOptions,
  VersionRecord,
  VersionRoute,
} from "./parameter-versions.js";
export {
  applyVerdict,
  canaryVersion,
  currentVersion,
  nextVersionId,
  publishVersion,
  recordServed,
  rollbackTo,
  routeVersion,
  withoutCanary,
} from "./parameter-versions.js";
export type { BucketStats, EmptyParametersOptions, ParametersSnapshot } from "./parameters.js";
export { applyOutcome, emptyParameters } from "./parameters.js";
export type { Rng } from "./random.js";
export { createRng, sampleBeta, sampleGamma } from "./random.js";
export type {
  ReliabilityObservation,
  ReliabilityOptions,
  ReliabilityRecord,
  ReliabilityScore,
} from "./reliability.js";
export {
  observeReliability,
  orderByReliability,
  reliabilityKey,
  reliabilityObservations,
  reliabilityScore,
} from "./reliability.js";
export type {
  AgentResult,
  ReliabilityDrift,
  ReliabilityDriftOptions,
  ReliabilityDrop,
  StrategyScope,
} from "./reliability-drift.js";
export { createReliabilityDrift } from "./reliability-drift.js";
export type {
  ArmViews,
  Choice,
  RewardPenalty,
  Selector,
  SelectorConfig,
  SelectorConfigInput,
  WarmStartConfig,
} from "./selector.js";
export { defaultSelectorConfig, rewardPenalty, selectorConfig } from "./selector.js";
export type { SelectorFactory, SelectorRegistry } from "./selector-registry.js";
export { builtinSelectors, selectorRegistry } from "./selector-registry.js";
export type { SimilaritySignature } from "./similarity-signature.js";
export {
  hammingDistance,
  SIGNATURE_VERSION,
  similaritySignature,
} from "./similarity-signature.js";
export type { TrainingExperience, TrainOptions } from "./training.js";
export { trainParameters } from "./training.js";
export type { ScheduleOptions, TrainingSchedule } from "./training-schedule.js";
export {
  DEFAULT_TRAINING_SCHEDULE,
  nextTrainingRun,
  parseSchedule,
} from "./training-schedule.js";
export type { ExperienceSample, WarmStartOptions } from "./warm-start.js";
export { similarExperiences, warmStartPriors } from "./warm-start.js";
