/**
 * The outcome of a finished goal as the domain sees it: plain numbers for
 * times (epoch and duration milliseconds) rather than protobuf Timestamps, so
 * it is JSON-able as stored and cheap to replay. `services/learning/wire.ts`
 * converts the generated `agentmesh.v1.Outcome` to and from it.
 *
 * @example
 * validateOutcome(o);            // INVALID_ARGUMENT on a malformed outcome
 * armObservation(o)              // → { success, latencyMs, cost, at }
 */
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { ArmObservation } from "./arm-stats.js";
import type { DecisionContext } from "./context-bucket.js";

/** One agent's part in a goal. */
export interface AgentOutcome {
  agentId: string;
  capability: string;
  success: boolean;
  latencyMs: number;
}

/** A finished goal's outcome (JSON-able; the experience store's row minus the vector). */
export interface OutcomeRecord {
  goalId: string;
  context: DecisionContext;
  strategy: string;
  /** Version that chose the strategy; empty when none did. */
  parametersVersion: string;
  success: boolean;
  latencyMs: number;
  cost: number;
  /** Epoch milliseconds. */
  finishedAt: number;
  collaborative: boolean;
  agentResults: AgentOutcome[];
}

const maxName = 200;

/** Throws INVALID_ARGUMENT listing every problem of a malformed outcome. */
export function validateOutcome(o: OutcomeRecord): void {
  const bad: string[] = [];
  if (!o.goalId) bad.push("goal_id is required");
  if (!o.strategy) bad.push("strategy is required");
  else if (o.strategy.length > maxName) bad.push(`strategy longer than ${maxName} characters`);
  if (!o.context) bad.push("context is required");
  else if (!o.context.goalKind) bad.push("context.goal_kind is required");
  if (!(Number.isFinite(o.latencyMs) && o.latencyMs >= 0)) bad.push("latency must be ≥ 0");
  if (!(Number.isFinite(o.cost) && o.cost >= 0)) bad.push("cost must be ≥ 0");
  if (!(Number.isFinite(o.finishedAt) && o.finishedAt > 0)) bad.push("finished_at is required");
  o.agentResults?.forEach((r, i) => {
    if (!r.agentId || !r.capability) {
      bad.push(`agent_results[${i}] needs agent_id and capability`);
    }
  });
  if (bad.length > 0) {
    throw new MeshError(Code.InvalidArgument, `invalid outcome: ${bad.join("; ")}`, {
      details: { violations: bad },
    });
  }
}

/** The observation an outcome adds to its strategy's statistics. */
export function armObservation(o: OutcomeRecord): ArmObservation {
  return { success: o.success, latencyMs: o.latencyMs, cost: o.cost, at: o.finishedAt };
}
