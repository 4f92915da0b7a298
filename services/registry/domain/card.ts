/**
 * Validation of agent cards at registration: names, capabilities, schemas
 * that compile, sane concurrency, tool scopes, rate limits and side effects. One
 * INVALID_ARGUMENT error lists every problem with its field path.
 *
 * @example
 * validateCard(request.card); // throws MeshError(INVALID_ARGUMENT) naming e.g. "skills[1].capability"
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Ajv } from "ajv";
import { type AgentCard, SideEffect, type Tool } from "../../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { capabilityNameProblem } from "../../../lib/plan/capability.js";
import { nameProblem, nameRules } from "../../../lib/proto/name-rules.js";
import { conformanceViolations } from "./conformance.js";

/** Bounds a card must stay within. */
export const cardLimits = {
  maxSkills: 128,
  maxTools: 128,
  maxConcurrency: 1024,
  maxRatePerSecond: 100_000,
  maxBurst: 100_000,
  maxLabels: 64,
  maxTags: 32,
  maxText: 2000,
} as const;

/** One problem of a card. */
export interface CardViolation {
  path: string;
  message: string;
}

const scopePattern = /^[a-z][a-z0-9_.:-]{0,127}$/;
const labelKeyPattern = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;

// A private Ajv: cards are checked for compiling, never cached across agents.
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });

/** Every problem of a card; empty when it is valid. */
export function cardViolations(card: AgentCard | undefined): CardViolation[] {
  const out: CardViolation[] = [];
  const add = (path: string, message: string) => out.push({ path, message });
  if (card === undefined) return [{ path: "card", message: "card is required" }];
  const nameIssue = nameProblem(nameRules.agentName, card.name);
  if (nameIssue !== undefined) add("name", nameIssue);
  if (card.version.trim() === "" || card.version.length > 64)
    add("version", "version is required (at most 64 characters)");
  if (card.description.length > cardLimits.maxText)
    add("description", `at most ${cardLimits.maxText} characters`);
  if (card.skills.length === 0 && card.tools.length === 0)
    add("skills", "a card offers at least one skill or tool");
  if (card.skills.length > cardLimits.maxSkills)
    add("skills", `at most ${cardLimits.maxSkills} skills`);
  const capabilities = new Set<string>();
  card.skills.forEach((skill, i) => {
    const at = `skills[${i}]`;
    const problem = capabilityNameProblem(skill.capability);
    if (problem !== undefined) add(`${at}.capability`, problem);
    else if (capabilities.has(skill.capability))
      add(`${at}.capability`, `duplicate capability "${skill.capability}"`);
    capabilities.add(skill.capability);
    if (skill.maxConcurrency > cardLimits.maxConcurrency) {
      add(`${at}.max_concurrency`, `at most ${cardLimits.maxConcurrency}`);
    }
    if (skill.description.length > cardLimits.maxText)
      add(`${at}.description`, `at most ${cardLimits.maxText} characters`);
    if (skill.tags.length > cardLimits.maxTags)
      add(`${at}.tags`, `at most ${cardLimits.maxTags} tags`);
    schemaCheck(skill.inputSchema, `${at}.input_schema`, add);
    schemaCheck(skill.outputSchema, `${at}.output_schema`, add);
  });
  if (card.tools.length > cardLimits.maxTools) add("tools", `at most ${cardLimits.maxTools} tools`);
  const tools = new Set<string>();
  card.tools.forEach((tool, i) => {
    for (const v of toolViolations(tool)) add(`tools[${i}].${v.path}`, v.message);
    if (tools.has(tool.name)) add(`tools[${i}].name`, `duplicate tool "${tool.name}"`);
    tools.add(tool.name);
  });
  for (const v of conformanceViolations(card)) add(v.path, v.message);
  const labels = Object.entries(card.labels);
  if (labels.length > cardLimits.maxLabels) add("labels", `at most ${cardLimits.maxLabels} labels`);
  for (const [k, v] of labels) {
    if (!labelKeyPattern.test(k))
      add(`labels.${k}`, "label keys are letters, digits, '_', '.', '/', '-' (at most 63)");
    if (v.length > 256) add(`labels.${k}`, "label values are at most 256 characters");
  }
  return out;
}

/** Problems of one tool (also checked alone by RegisterTool). */
export function toolViolations(tool: Tool): CardViolation[] {
  const out: CardViolation[] = [];
  const add = (path: string, message: string) => out.push({ path, message });
  const problem = capabilityNameProblem(tool.name);
  if (problem !== undefined) add("name", problem.replace("capability", "tool name"));
  if (tool.authScope !== "" && !scopePattern.test(tool.authScope)) {
    add("auth_scope", `scope "${tool.authScope}" must look like "tools:http"`);
  }
  const limit = tool.rateLimit;
  if (limit !== undefined) {
    if (
      !Number.isFinite(limit.perSecond) ||
      limit.perSecond < 0 ||
      limit.perSecond > cardLimits.maxRatePerSecond
    ) {
      add(
        "rate_limit.per_second",
        `must be between 0 (unlimited) and ${cardLimits.maxRatePerSecond}`,
      );
    }
    if (limit.burst > cardLimits.maxBurst)
      add("rate_limit.burst", `at most ${cardLimits.maxBurst}`);
    if (limit.perSecond > 0 && limit.burst === 0) {
      add("rate_limit.burst", "a limited tool needs a burst of at least 1");
    }
  }
  if (!(tool.sideEffect in SideEffect)) {
    add("side_effect", "must be read-only, idempotent, destructive or unspecified");
  }
  schemaCheck(tool.inputSchema, "input_schema", add);
  return out;
}

/** Throws INVALID_ARGUMENT listing every problem of the card (`details.violations`). */
export function validateCard(card: AgentCard | undefined): AgentCard {
  const violations = cardViolations(card);
  if (violations.length > 0) throw invalid(`invalid agent card "${card?.name ?? ""}"`, violations);
  return card!;
}

/** Throws INVALID_ARGUMENT listing every problem of the tool. */
export function validateTool(tool: Tool | undefined): Tool {
  if (tool === undefined)
    throw invalid("invalid tool", [{ path: "tool", message: "tool is required" }]);
  const violations = toolViolations(tool);
  if (violations.length > 0) throw invalid(`invalid tool "${tool.name}"`, violations);
  return tool;
}

function invalid(what: string, violations: CardViolation[]): MeshError {
  return new MeshError(
    Code.InvalidArgument,
    `${what}: ${violations.map((v) => `${v.path}: ${v.message}`).join("; ")}`,
    { details: { violations }, retryable: false },
  );
}

function schemaCheck(
  schema: JsonObject | undefined,
  path: string,
  add: (path: string, message: string) => void,
): void {
  if (schema === undefined || Object.keys(schema).length === 0) return;
  try {
    // compile() also validates against the meta-schema. Without its $id the
    // schema is not registered, so the same card can be checked again.
    const { $id: _id, ...rest } = schema;
    ajv.compile(rest);
    ajv.removeSchema(rest);
  } catch (err) {
    add(path, `invalid JSON Schema: ${(err as Error).message}`);
  }
}
