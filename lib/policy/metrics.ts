/**
 * Prometheus metrics of the policy engine. Pass the process registry (e.g.
 * `meshMetrics().registry`) so they are scraped with the rest; each registry
 * gets one set, however many engines share it.
 *
 * | metric | labels | what |
 * | --- | --- | --- |
 * | `agentmesh_policy_decisions_total` | result (`allow`, `deny`), cached (`true`, `false`) | decisions made |
 * | `agentmesh_policy_evaluation_errors_total` | | evaluations that failed (the call was denied; the decision log has the error) |
 * | `agentmesh_policy_reloads_total` | result (`ok`, `error`) | bundle loads and reloads (an error keeps the last good bundle) |
 * | `agentmesh_policy_last_reload_error` | | 1 while the last reload was rejected (the error is in `/readyz` and the log) |
 * | `agentmesh_policy_shadow_decisions_total` | changed (`true`, `false`) | decisions a shadow candidate bundle also made, and whether its answer differed |
 * | `agentmesh_policy_ready` | | 1 while a bundle is loaded, 0 when failing closed |
 * | `agentmesh_policy_bundle_info` | revision, role (`live`, `candidate`) | 1 for each revision loaded now |
 *
 * @example
 * const metrics = policyMetrics(registry);
 * metrics.reloads.inc({ result: "error" });
 */
import { Counter, Gauge, Registry } from "prom-client";

/** Decision counts, kept as plain numbers on the hot path and read at scrape time. */
export interface DecisionCounts {
  allowFresh: number;
  allowCached: number;
  denyFresh: number;
  denyCached: number;
}

export interface PolicyMetrics {
  registry: Registry;
  /** Incremented directly by engines (a prom-client label lookup costs more than a cached decision). */
  counts: DecisionCounts;
  decisions: Counter<"result" | "cached">;
  evaluationErrors: Counter;
  reloads: Counter<"result">;
  lastReloadError: Gauge;
  shadow: Counter<"changed">;
  ready: Gauge;
  bundleInfo: Gauge<"revision" | "role">;
}

const byRegistry = new WeakMap<Registry, PolicyMetrics>();

/** The policy metrics registered in `registry` (default: a new private registry). */
export function policyMetrics(registry: Registry = new Registry()): PolicyMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const counts: DecisionCounts = { allowFresh: 0, allowCached: 0, denyFresh: 0, denyCached: 0 };
  const metrics: PolicyMetrics = {
    registry,
    counts,
    decisions: new Counter({
      name: "agentmesh_policy_decisions_total",
      help: "Policy decisions, by result and whether the decision cache answered.",
      labelNames: ["result", "cached"],
      registers,
      collect() {
        this.reset();
        this.inc({ result: "allow", cached: "false" }, counts.allowFresh);
        this.inc({ result: "allow", cached: "true" }, counts.allowCached);
        this.inc({ result: "deny", cached: "false" }, counts.denyFresh);
        this.inc({ result: "deny", cached: "true" }, counts.denyCached);
      },
    }),
    evaluationErrors: new Counter({
      name: "agentmesh_policy_evaluation_errors_total",
      help: "Policy evaluations that failed (the call was denied); the decision log line carries the error.",
      registers,
    }),
    lastReloadError: new Gauge({
      name: "agentmesh_policy_last_reload_error",
      help: "1 while the last policy bundle reload was rejected (the last good bundle keeps serving).",
      registers,
    }),
    shadow: new Counter({
      name: "agentmesh_policy_shadow_decisions_total",
      help: "Decisions the shadow candidate bundle also made, by whether its answer differed from the live one.",
      labelNames: ["changed"],
      registers,
    }),
    reloads: new Counter({
      name: "agentmesh_policy_reloads_total",
      help: "Policy bundle loads and hot reloads, by result; an error keeps the last good bundle.",
      labelNames: ["result"],
      registers,
    }),
    ready: new Gauge({
      name: "agentmesh_policy_ready",
      help: "1 while a policy bundle is loaded; 0 means every call is denied (fail closed).",
      registers,
    }),
    bundleInfo: new Gauge({
      name: "agentmesh_policy_bundle_info",
      help: "1 for each policy bundle revision loaded: the live one and a shadow candidate.",
      labelNames: ["revision", "role"],
      registers,
    }),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
