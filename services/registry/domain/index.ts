/**
 * The registry's domain: card validation, lease arithmetic, the sweeper's
 * selection, candidate ranking and watch events — plain functions of the
 * agents and a time, so the service only loads, stores and streams.
 *
 * @example
 * validateCard(request.card);
 * const ttl = leaseTtlMs(request.leaseTtl);
 * const agents = rankCandidates(all, "text.summarize", Date.now(), request.limit);
 */
export {
  agentChange,
  defaultReliability,
  expiredAgents,
  isLive,
  liveCapabilities,
  offers,
  rankCandidates,
  reliabilityOf,
  watchMatches,
  watchSnapshot,
} from "./agents.js";
export type { CardViolation } from "./card.js";
export { cardLimits, cardViolations, toolViolations, validateCard, validateTool } from "./card.js";
export { conformanceFailures, conformanceViolations } from "./conformance.js";
export { heartbeatIntervalMs, leaseBounds, leaseTtlMs } from "./lease.js";
