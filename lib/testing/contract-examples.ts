/**
 * Failing examples of the contract's `buf.validate` rules, made from the
 * descriptors: for every constrained field, a value that breaks one rule and a
 * message that keeps all the others. Unit tests and the end-to-end tests of
 * both doors (gateway, service ports) share them, so a rule added to a
 * `.proto` file is tested without a new test.
 *
 * @example
 * for (const ex of ruleExamples(SubmitGoalRequestSchema)) checkMessage(ex.schema, ex.message); // throws
 */
import {
  create,
  type DescField,
  type DescMessage,
  getOption,
  type Message,
  ScalarType,
} from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

/** One broken rule: the message holding it, the field's name and the rule id. */
export interface RuleExample {
  schema: DescMessage;
  field: DescField;
  /** protovalidate's rule id (`string.pattern`, `required`, ...). */
  rule: string;
  /** A message that breaks exactly this rule. */
  message: Message;
}

/** Whether `field` declares any `buf.validate` rule. */
export function isConstrained(field: DescField): boolean {
  const rules = getOption(field, fieldRules);
  return rules.required || rules.type.case !== undefined;
}

/** A failing example of each rule declared on the fields of `schema` (not of nested messages). */
export function ruleExamples(schema: DescMessage): RuleExample[] {
  const out: RuleExample[] = [];
  for (const field of schema.fields.filter(isConstrained)) {
    for (const [rule, value] of failingValues(field)) {
      const init = validInit(schema);
      if (value === undefined) delete init[field.localName];
      else init[field.localName] = value;
      out.push({ schema, field, rule, message: create(schema, init as never) });
    }
  }
  return out;
}

/** A message of `schema` keeping every rule (constrained fields get a value that passes). */
export function validExample(schema: DescMessage): Message {
  return create(schema, validInit(schema) as never);
}

function validInit(schema: DescMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of schema.fields) {
    const rules = getOption(f, fieldRules);
    if (rules.required && f.fieldKind === "message") out[f.localName] = validExample(f.message);
    if (rules.type.case === "string") {
      const { pattern, minLen } = rules.type.value;
      // "acme" keeps every naming rule of the contract (tenant, kind, capability, agent).
      if (pattern || minLen > 0n) out[f.localName] = "acme";
    }
  }
  return out;
}

/** For each rule of `field`, a value breaking it and nothing else: [rule id, value]. */
function failingValues(field: DescField): [string, unknown][] {
  const rules = getOption(field, fieldRules);
  const out: [string, unknown][] = [];
  if (rules.required) out.push(["required", undefined]);
  const t = rules.type;
  switch (t.case) {
    case undefined:
      break;
    case "string": {
      const r = t.value;
      if (r.pattern) out.push(["string.pattern", "Not A Name!"]);
      if (r.maxLen > 0n) out.push(["string.max_len", "a".repeat(Number(r.maxLen) + 1)]);
      if (r.minLen > 0n) out.push(["string.min_len", ""]);
      break;
    }
    case "repeated":
      out.push(["repeated.max_items", Array(Number(t.value.maxItems) + 1).fill(listItem(field))]);
      break;
    case "map":
      out.push([
        "map.max_pairs",
        Object.fromEntries(
          Array.from({ length: Number(t.value.maxPairs) + 1 }, (_, i) => [
            `k${i}`,
            mapValue(field),
          ]),
        ),
      ]);
      break;
    case "uint32":
      if (t.value.lessThan.case === "lte") out.push(["uint32.lte", t.value.lessThan.value + 1]);
      break;
    case "enum":
      if (t.value.definedOnly && field.fieldKind === "enum") {
        const undefinedNumber = Math.max(...field.enum.values.map((v) => v.number)) + 1;
        out.push(["enum.defined_only", undefinedNumber]);
      }
      break;
    default:
      throw new Error(`${field.parent.typeName}.${field.name}: no failing example for ${t.case}`);
  }
  return out;
}

function mapValue(field: DescField): unknown {
  if (field.fieldKind !== "map") return undefined;
  if (field.mapKind === "message") return validExample(field.message);
  if (field.mapKind === "enum") return 1;
  if (field.scalar === ScalarType.STRING) return "v";
  if (field.scalar === ScalarType.BOOL) return true;
  if (field.scalar === ScalarType.BYTES) return new Uint8Array(1);
  return field.scalar === ScalarType.INT64 || field.scalar === ScalarType.UINT64 ? 1n : 1;
}

function listItem(field: DescField): unknown {
  if (field.fieldKind !== "list") return undefined;
  if (field.listKind === "enum") return 1;
  if (field.listKind === "scalar") return "x";
  return validExample(field.message);
}
