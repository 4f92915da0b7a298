/**
 * The learning context of a goal: tenant, kind, input size class, and the text
 * its similarity features are hashed from. The planner computes it when it asks
 * for a strategy and the executor when it reports the outcome; both must agree
 * exactly, or outcomes land in another bucket than the choices they judge —
 * hence one definition here.
 *
 * @example
 * decisionContext("acme", "summarize", { text: "..." }); // { sizeClass: "s", text: "...", ... }
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type DecisionContext, DecisionContextSchema } from "../../gen/agentmesh/v1/common_pb.js";

const maxContextText = 2000;

/** Input size classes by serialized length: s ≤ 1 KiB < m ≤ 32 KiB < l. */
export function sizeClass(input: JsonObject | undefined): "s" | "m" | "l" {
  const n = input === undefined ? 0 : JSON.stringify(input).length;
  return n <= 1024 ? "s" : n <= 32 * 1024 ? "m" : "l";
}

/** The context; text is the input's `text`, `query`, `topic` or `message`, else its string values. */
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
