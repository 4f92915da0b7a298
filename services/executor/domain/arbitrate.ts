/**
 * Arbitration between the replicas of a collaborative step: n agents answer
 * the same job; the step's output is the one a majority of the n agree on
 * (equal canonical JSON), else — once every replica has answered — the
 * output of the most reliable agent, flagged as a disagreement.
 *
 * @example
 * arbitrate(3, answers, (agent) => scores[agent] ?? 0.5);
 * // → { kind: "decided", output, agentIds: ["a", "b"], disagreement: true } | { kind: "waiting" } | { kind: "failed" }
 */
import type { JsonValue } from "@bufbuild/protobuf";

/** One replica's answer so far. */
export interface ReplicaAnswer {
  replica: number;
  /** "pending" until the replica succeeded or failed. */
  state: "pending" | "succeeded" | "failed";
  agentId: string;
  output?: JsonValue | undefined;
}

export type Arbitration =
  | { kind: "waiting" }
  /** Every replica answered and none succeeded. */
  | { kind: "failed" }
  | {
      kind: "decided";
      output: JsonValue;
      /** Agents whose (equal) output was taken. */
      agentIds: string[];
      /** Whether successful replicas gave different outputs. */
      disagreement: boolean;
      /** "majority", "reliability" or "single". */
      rule: "majority" | "reliability" | "single";
    };

/**
 * JSON with object keys sorted, so equal values compare equal as strings.
 * Numbers print as JavaScript does (1 and 1.0 are equal).
 */
export function canonicalJson(value: JsonValue | undefined): string {
  if (value === undefined) return "null";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
}

/** Decides a step with `n` replicas from the answers so far. */
export function arbitrate(
  n: number,
  answers: readonly ReplicaAnswer[],
  reliability: (agentId: string) => number,
): Arbitration {
  const groups = new Map<string, ReplicaAnswer[]>();
  let pending = 0;
  for (const a of answers) {
    if (a.state === "pending") pending++;
    else if (a.state === "succeeded") {
      const key = canonicalJson(a.output);
      const group = groups.get(key);
      if (group === undefined) groups.set(key, [a]);
      else group.push(a);
    }
  }
  // Replicas not yet dispatched count as pending too.
  pending += Math.max(0, n - answers.length);
  const sorted = [...groups.values()].sort(
    (x, y) => y.length - x.length || x[0]!.replica - y[0]!.replica,
  );
  const best = sorted[0];
  const disagreement = groups.size > 1;
  if (best !== undefined && best.length * 2 > n) {
    return {
      kind: "decided",
      output: best[0]!.output ?? null,
      agentIds: best.map((a) => a.agentId),
      disagreement,
      rule: n === 1 ? "single" : "majority",
    };
  }
  if (pending > 0) return { kind: "waiting" };
  if (best === undefined) return { kind: "failed" };
  // No majority: trust the most reliable agent; ties go to the lower replica index.
  let chosen = best[0]!;
  let chosenScore = reliability(chosen.agentId);
  for (const group of sorted) {
    for (const a of group) {
      const score = reliability(a.agentId);
      if (score > chosenScore || (score === chosenScore && a.replica < chosen.replica)) {
        chosen = a;
        chosenScore = score;
      }
    }
  }
  const key = canonicalJson(chosen.output);
  return {
    kind: "decided",
    output: chosen.output ?? null,
    agentIds: groups.get(key)!.map((a) => a.agentId),
    disagreement,
    rule: n === 1 ? "single" : "reliability",
  };
}
