/**
 * The planner's `StrategyChooser` over the learning service's
 * ChooseStrategy RPC, with a short deadline: planning must not wait on
 * learning. Wrap it in `withFallback` (domain) so an error or timeout picks
 * the playbook's first eligible strategy instead.
 *
 * @example
 * const chooser = withFallback(learningChooser(learning, { goalId, timeoutMs: 500 }));
 */
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import type { Client } from "../../lib/rpc/index.js";
import type { StrategyChooser } from "./domain/index.js";

/** Feature that marks a decision as hypothetical (ExplainPlan): learning records no pull. */
export const dryRunFeature = "dry_run";

export interface LearningChooserOptions {
  /** Goal the decision is for; routes it to a canary version deterministically. */
  goalId: string;
  /** Deadline of the call; default 500 ms. */
  timeoutMs?: number;
  /** Ask without side effects (no pull is recorded). Default false. */
  dryRun?: boolean;
}

export function learningChooser(
  learning: Client<typeof LearningService>,
  options: LearningChooserOptions,
): StrategyChooser {
  return {
    name: "learning",
    async choose({ context, candidates }) {
      const features = { ...context.features };
      if (options.dryRun) features[dryRunFeature] = "true";
      const res = await learning.chooseStrategy(
        { context: { ...context, features }, candidates: [...candidates], goalId: options.goalId },
        { timeoutMs: options.timeoutMs ?? 500 },
      );
      return {
        strategy: res.strategy,
        selector: res.selector,
        parametersVersion: res.parametersVersion,
        scores: { ...res.scores },
        reason: res.reason,
      };
    },
  };
}
