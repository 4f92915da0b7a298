/**
 * Policy on every call: the compiled OPA policy (`policies/policy.wasm` +
 * `policies/data.json`) evaluated in-process, hot-reloaded, with a decision
 * cache and an OPA-shaped decision log. See `policies/README.md` for authors.
 *
 * @example
 * import { createDecisionLog, createPolicyAuthorizer, openPolicyEngine } from "../policy/index.js";
 * const engine = await openPolicyEngine({ wasmPath: config.policyPath, registry: metrics.registry });
 * const authorizer = createPolicyAuthorizer(engine, { decisionLog: createDecisionLog({ destination: "decisions.log" }) });
 */
export { createPolicyAuthorizer, type PolicyAuthorizerOptions } from "./authorizer.js";
export {
  bundleRevision,
  decisionEntrypoint,
  loadPolicyBundle,
  type PolicyBundle,
  parseDecision,
  readPolicyBundle,
} from "./bundle.js";
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
} from "./engine.js";
export {
  buildPolicyInput,
  decisionCacheKey,
  methodPlan,
  type PolicyInput,
  type PolicyResource,
} from "./input.js";
export { type PolicyMetrics, policyMetrics } from "./metrics.js";
