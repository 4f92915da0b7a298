/**
 * The learning context of a goal, as the planner computes it when it asks for
 * a strategy, so the outcome lands in the same bucket: tenant, kind, input
 * size class, and the text the similarity features are hashed from.
 * (Services share wire formats, not code: this mirrors the planner's rule.)
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type DecisionContext, DecisionContextSchema } from "../../gen/agentmesh/v1/common_pb.js";

const maxContextText = 2000;

/** s ≤ 1 KiB < m ≤ 32 KiB < l, by serialized length. */
export function sizeClass(input: JsonObject | undefined): "s" | "m" | "l" {
  const n = input === undefined ? 0 : JSON.stringify(input).length;
  return n <= 1024 ? "s" : n <= 32 * 1024 ? "m" : "l";
}

export function decisionContext(
  tenantId: string,
  goalKind: string,
  input: JsonObject | undefined,
): DecisionContext {
  let text = "";
  for (const key of ["text", "query", "topic", "message"]) {
    const v = input?.[key];
    if (typeof v === "string") {
      text = v;
      break;
    }
  }
  if (text === "" && input !== undefined) {
    text = Object.values(input)
      .filter((v): v is string => typeof v === "string")
      .join(" ");
  }
  return create(DecisionContextSchema, {
    tenantId,
    goalKind,
    sizeClass: sizeClass(input),
    text: text.slice(0, maxContextText),
  });
}
