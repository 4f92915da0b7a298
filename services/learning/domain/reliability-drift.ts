/**
 * The drift guard's second trigger: an agent whose reliability for a
 * capability drops. Each (agent, capability) keeps its results on two
 * timescales (`observeWithReset`: a long memory of ~200 results and a short
 * one of ~7); when the recent success rate falls `drop` (default 0.4) below
 * the long one, the strategies whose goals used that capability, in every
 * tenant and goal kind they were seen in, are reported so their statistics
 * can be discounted. Without it a strategy with a long good record keeps
 * being chosen until enough of its own failures outweigh that record.
 *
 * A tracker holds state (bounded: the least recently seen agents and
 * strategies are forgotten first), no clock and no I/O.
 *
 * @example
 * const drift = createReliabilityDrift();
 * const drops = drift.observe({ tenantId: "acme", goalKind: "report", strategy: "solo" },
 *   [{ agentId: "a1", capability: "text.summarize", success: false }]);
 * for (const d of drops) await discount(d.strategies);
 */
import type { ArmView } from "./arm-stats.js";
import { observeWithReset, type ResetOptions } from "./discounting.js";
import { reliabilityKey } from "./reliability.js";

/** A strategy of a tenant's goal kind: the scope of the statistics a drop affects. */
export interface StrategyScope {
  tenantId: string;
  goalKind: string;
  strategy: string;
}

/** One agent's result for a capability within a goal. */
export interface AgentResult {
  agentId: string;
  capability: string;
  success: boolean;
}

/** A detected drop and the statistics it affects. */
export interface ReliabilityDrop {
  agentId: string;
  capability: string;
  /** The long-run success rate before the drop. */
  longRate: number;
  /** The recent success rate that triggered it. */
  recentRate: number;
  /** Every strategy seen using the capability (the current outcome's included). */
  strategies: StrategyScope[];
}

export interface ReliabilityDriftOptions extends ResetOptions {
  /** Agent–capability pairs tracked at most; default 10,000. */
  maxAgents?: number;
  /** Strategy scopes remembered per capability at most; default 1,000. */
  maxStrategies?: number;
}

export type ReliabilityDrift = ReturnType<typeof createReliabilityDrift>;

/** Bounded insertion-ordered map: a touched key moves to the end, the first one goes. */
function touch<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

export function createReliabilityDrift(options: ReliabilityDriftOptions = {}) {
  const maxAgents = options.maxAgents ?? 10_000;
  const maxStrategies = options.maxStrategies ?? 1_000;
  const pairs = new Map<
    string,
    { long: Record<string, ArmView>; recent: Record<string, ArmView> }
  >();
  const users = new Map<string, Map<string, StrategyScope>>();

  return {
    /**
     * Folds one goal's agent results in; returns the drops they revealed
     * (usually none). A pair that dropped starts again from its recent
     * results, so one degradation is reported once.
     */
    observe(scope: StrategyScope, results: readonly AgentResult[]): ReliabilityDrop[] {
      const drops: ReliabilityDrop[] = [];
      for (const r of results) {
        const scopeKey = `${scope.tenantId}\u0000${scope.goalKind}\u0000${scope.strategy}`;
        const seen = users.get(r.capability) ?? new Map<string, StrategyScope>();
        touch(seen, scopeKey, scope, maxStrategies);
        touch(users, r.capability, seen, maxAgents);

        const key = reliabilityKey(r.agentId, r.capability);
        const pair = pairs.get(key) ?? { long: {}, recent: {} };
        touch(pairs, key, pair, maxAgents);
        const before = pair.long[key];
        const longRate = before ? before.successes / (before.successes + before.failures) : 0;
        if (!observeWithReset(pair.long, pair.recent, key, r.success, options)) continue;
        const recent = pair.recent[key]!;
        drops.push({
          agentId: r.agentId,
          capability: r.capability,
          longRate,
          recentRate: recent.successes / (recent.successes + recent.failures),
          strategies: [...seen.values()],
        });
      }
      return drops;
    },
  };
}
