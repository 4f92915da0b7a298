/**
 * Policy on every call: the OPA bundle (`bundles/agentmesh.tar.gz`, built
 * from `policies/`) evaluated in-process, hot-reloaded after a corpus check,
 * with a decision cache, an OPA-shaped decision log and a shadow candidate.
 * See `policies/README.md` for authors.
 *
 * @example
 * import { createDecisionLog, createPolicyAuthorizer, openPolicyEngine } from "../policy/index.js";
 * const engine = await openPolicyEngine({ path: config.policyPath, registry: metrics.registry });
 * const authorizer = createPolicyAuthorizer(engine, { decisionLog: createDecisionLog({ destination: "decisions.log" }) });
 */
export { type DispatchQuestion, dispatchAction, dispatchInput } from "./actions.js";
export {
  createPolicyAuthorizer,
  createPolicyCheck,
  type DecisionObserver,
  observeDecisions,
  type PolicyAuthorizer,
  type PolicyAuthorizerOptions,
} from "./authorizer.js";
export {
  bundleRevision,
  decisionEntrypoint,
  errorText,
  loadBundleArchive,
  loadPolicyBundle,
  type PolicyBundle,
  parseDecision,
  readPolicyBundle,
} from "./bundle.js";
export { builtinCorpus, checkCorpus, readRecordedInputs } from "./corpus.js";
export { DecisionCache, type DecisionCacheOptions } from "./decision-cache.js";
export {
  createDecisionLog,
  type DecisionLog,
  type DecisionLogEntry,
  type DecisionLogOptions,
} from "./decision-log.js";
export {
  type EngineDecision,
  openPolicyEngine,
  PolicyEngine,
  type PolicyEngineOptions,
  type PolicyEvent,
  type PolicyStatus,
  type ShadowDifference,
} from "./engine.js";
export {
  buildPolicyInput,
  decisionCacheKey,
  methodPlan,
  type PolicyInput,
  type PolicyResource,
} from "./input.js";
export { type PolicyMetrics, policyMetrics } from "./metrics.js";
export { type RequestView, requestView } from "./request-view.js";
export { createShadowLog, type ShadowChange, shadowReport } from "./shadow-log.js";
