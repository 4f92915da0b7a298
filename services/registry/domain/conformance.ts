/**
 * Conformance examples (ADR-015): a card may declare, per capability, a job
 * input and a JSON Schema its output must satisfy. A new version registers in
 * probation; the agent runs the examples through its handlers and reports the
 * outputs; the registry judges them here and only a version that passes every
 * example becomes LIVE (found by FindAgents, given jobs).
 *
 * @example
 * const failures = conformanceFailures(card, results); // [] → the agent may go LIVE
 */
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Ajv } from "ajv";
import type { AgentCard, ConformanceResult } from "../../../gen/agentmesh/v1/registry_pb.js";
import type { CardViolation } from "./card.js";

// Private: examples are compiled per judgement, never cached across agents.
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });

/** Problems of a card's examples: each names one of its capabilities and has a schema that compiles. */
export function conformanceViolations(card: AgentCard): CardViolation[] {
  const out: CardViolation[] = [];
  const capabilities = new Set(card.skills.map((s) => s.capability));
  if (card.conformance.length > 32)
    out.push({ path: "conformance", message: "at most 32 examples" });
  card.conformance.forEach((example, i) => {
    const at = `conformance[${i}]`;
    if (!capabilities.has(example.capability)) {
      out.push({
        path: `${at}.capability`,
        message: `the card has no skill "${example.capability}"`,
      });
    }
    const schema = example.expectedOutputSchema;
    if (schema === undefined || Object.keys(schema).length === 0) {
      out.push({
        path: `${at}.expected_output_schema`,
        message: "an example needs an output schema",
      });
      return;
    }
    try {
      const { $id: _id, ...rest } = schema;
      ajv.compile(rest);
      ajv.removeSchema(rest);
    } catch (err) {
      out.push({
        path: `${at}.expected_output_schema`,
        message: `invalid JSON Schema: ${(err as Error).message}`,
      });
    }
  });
  return out;
}

/** One line per example the results do not pass; empty when every example passed. */
export function conformanceFailures(
  card: AgentCard,
  results: readonly ConformanceResult[],
): string[] {
  const byIndex = new Map(results.map((r) => [r.index, r]));
  return card.conformance.flatMap((example, i) => {
    const label = `conformance[${i}] (${example.capability})`;
    const result = byIndex.get(i);
    if (result === undefined) return [`${label}: no result reported`];
    if (result.error !== "" || result.output === undefined) {
      return [`${label}: the handler failed: ${result.error || "no output"}`];
    }
    const { $id: _id, ...schema } = example.expectedOutputSchema ?? {};
    const validate = ajv.compile(schema);
    ajv.removeSchema(schema);
    if (validate(toJson(ValueSchema, result.output))) return [];
    const why = (validate.errors ?? [])
      .map((e) => `output${e.instancePath.replaceAll("/", ".")}: ${e.message ?? "invalid"}`)
      .join("; ");
    return [`${label}: ${why}`];
  });
}
