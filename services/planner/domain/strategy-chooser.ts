/**
 * How the planner picks one of a playbook's strategies. The learning service
 * implements `StrategyChooser` over its `ChooseStrategy` RPC (its response
 * already has this shape); `firstStrategyChooser` is the deterministic
 * fallback used when learning is unavailable or answers nonsense.
 *
 * @example
 * const chooser = withFallback(learningChooser, { onFallback: (err) => log.warn({ err }, "learning unavailable") });
 * const choice = await chooser.choose({ context, candidates: ["solo", "committee"] });
 */
import type { DecisionContext } from "../../../gen/agentmesh/v1/common_pb.js";

/** What a chooser is asked. */
export interface ChooseInput {
  /** Context of the decision (tenant, goal kind, size class, text). */
  readonly context: DecisionContext;
  /** Eligible strategy names, in playbook order (the first is the default); at least one. */
  readonly candidates: readonly string[];
}

/** A chooser's answer; structurally a `ChooseStrategyResponse`. */
export interface StrategyChoice {
  /** One of the candidates. */
  strategy: string;
  /** Who chose, e.g. "thompson" or "fallback". */
  selector: string;
  /** Learning parameter version that chose; empty if none. */
  parametersVersion: string;
  /** Score per candidate as the chooser saw it. */
  scores: { [strategy: string]: number };
  /** Why, in a sentence. */
  reason: string;
}

/** Picks a strategy. May be slow or fail (it may be a remote call). */
export interface StrategyChooser {
  readonly name: string;
  choose(input: ChooseInput): Promise<StrategyChoice>;
}

/** Always the first candidate: the playbook's default. */
export const firstStrategyChooser: StrategyChooser = {
  name: "fallback",
  async choose({ candidates }) {
    const strategy = candidates[0] ?? "";
    return {
      strategy,
      selector: "fallback",
      parametersVersion: "",
      scores: Object.fromEntries(candidates.map((c, i) => [c, i === 0 ? 1 : 0])),
      reason: `"${strategy}" is the playbook's default strategy`,
    };
  },
};

export interface WithFallbackOptions {
  /** Used when the primary fails or picks a non-candidate; default `firstStrategyChooser`. */
  fallback?: StrategyChooser;
  /** Called with why the fallback was used (for logs and metrics); default none. */
  onFallback?: (reason: unknown) => void;
}

/**
 * Wraps a chooser so planning never fails because of it: errors and answers
 * outside the candidates go to the fallback, whose reason says why.
 */
export function withFallback(
  primary: StrategyChooser,
  options: WithFallbackOptions = {},
): StrategyChooser {
  const fallback = options.fallback ?? firstStrategyChooser;
  return {
    name: primary.name,
    async choose(input) {
      let why: string;
      try {
        const choice = await primary.choose(input);
        if (input.candidates.includes(choice.strategy)) return choice;
        why = `${primary.name} chose "${choice.strategy}", which is not a candidate`;
        options.onFallback?.(new Error(why));
      } catch (err) {
        why = `${primary.name} is unavailable`;
        options.onFallback?.(err);
      }
      const choice = await fallback.choose(input);
      return { ...choice, reason: `${why}; ${choice.reason}` };
    },
  };
}
