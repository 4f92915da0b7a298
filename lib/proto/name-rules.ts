/**
 * The naming rules of the mesh, read from the contract. Capability names, goal
 * kinds, tenant ids and agent names are declared once, as `buf.validate`
 * string rules on fields of `proto/agentmesh/v1/*.proto`; code that needs a
 * rule outside a request (the SDK's `defineAgent`, bus subject names, the
 * playbook loader, JWT claims) reads it here from the generated descriptor,
 * so it cannot drift from what the services enforce. A test checks that every
 * field of each kind in the contract carries the same rule.
 *
 * @example
 * nameProblem(nameRules.capability, "Text.Upper");
 * // 'capability "Text.Upper" does not match ^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$'
 */
import { type DescField, type DescMessage, getOption } from "@bufbuild/protobuf";
import { field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { SubmitGoalRequestSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { AgentCardSchema, SkillSchema } from "../../gen/agentmesh/v1/registry_pb.js";

/** One naming rule: what it names, its pattern (RE2 syntax, also valid JavaScript) and length. */
export interface NameRule {
  what: string;
  /** The pattern as written in the contract. */
  source: string;
  pattern: RegExp;
  /** Longest value allowed; 0 when only the pattern bounds it. */
  maxLen: number;
}

/** The string rule declared on `schema`'s field `name`. */
export function fieldNameRule(what: string, schema: DescMessage, name: string): NameRule {
  const field = schema.fields.find((f) => f.name === name);
  if (!field) throw new Error(`${schema.typeName} has no field ${name}`);
  return stringRuleOf(what, field);
}

/** The `buf.validate` string rule of `field` (its pattern and maximum length). */
export function stringRuleOf(what: string, field: DescField): NameRule {
  const rules = getOption(field, fieldRules);
  if (rules.type.case !== "string" || rules.type.value.pattern === "") {
    throw new Error(`${field.parent.typeName}.${field.name} declares no string pattern`);
  }
  const { pattern, maxLen } = rules.type.value;
  return { what, source: pattern, pattern: new RegExp(pattern), maxLen: Number(maxLen) };
}

/** The mesh's names, each from the field of the contract that defines it. */
export const nameRules = {
  /** Capabilities: lowercase words joined by dots (`text.summarize`); NATS subject tokens and policy grants. */
  capability: fieldNameRule("capability", SkillSchema, "capability"),
  /** Goal kinds (playbook names): the same shape as capabilities. */
  goalKind: fieldNameRule("goal kind", SubmitGoalRequestSchema, "kind"),
  /** Tenant ids: lowercase letters, digits and dashes, at most 63. */
  tenantId: fieldNameRule("tenant id", SubmitGoalRequestSchema, "tenant_id"),
  /** Agent names (`AgentCard.name`). */
  agentName: fieldNameRule("agent name", AgentCardSchema, "name"),
} as const;

/** Why `value` breaks `rule`, or undefined when it keeps it. */
export function nameProblem(rule: NameRule, value: string): string | undefined {
  if (value === "") return `${rule.what} is required`;
  if (rule.maxLen > 0 && value.length > rule.maxLen) {
    return `${rule.what} is longer than ${rule.maxLen} characters`;
  }
  if (!rule.pattern.test(value)) {
    return `${rule.what} ${JSON.stringify(value.slice(0, 160))} does not match ${rule.source}`;
  }
  return undefined;
}

/** Whether `value` keeps `rule`. */
export function isName(rule: NameRule, value: string): boolean {
  return nameProblem(rule, value) === undefined;
}
