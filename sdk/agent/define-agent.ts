/**
 * Declaring an agent: a name, a version and skills, each skill a capability
 * with JSON Schemas for its input and output and a handler. The definition is
 * plain data plus functions, checked once here (names, schemas) so a bad one
 * fails at start-up, not on the first job.
 *
 * @example
 * export const greeter = defineAgent({
 *   name: "greeter",
 *   version: "1.0.0",
 *   skills: {
 *     "text.greet": {
 *       description: "Greets someone by name.",
 *       inputSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
 *       handler: async (input: { name: string }) => ({ greeting: `Hello, ${input.name}!` }),
 *     },
 *   },
 * });
 */
import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type AgentCard,
  AgentCardSchema,
  SideEffect,
  type ToolSchema,
} from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import { nameProblem, nameRules } from "../../lib/proto/name-rules.js";

/** A JSON Schema (draft 2020-12 or 07, as ajv reads it). */
export type JsonSchema = JsonObject;

/** What a handler knows about the job it runs (the handler contract: `sdk/README.md`). */
export interface SkillContext {
  /** Unique id of this attempt of the step (and replica). */
  attemptId: string;
  /**
   * Key external side effects on this: `<goal>/<step>/<replica>`, the same for every
   * attempt and delivery of the step, so an effect done by an attempt that then
   * crashed or timed out is not done again by the next attempt.
   */
  idempotencyKey: string;
  goalId: string;
  tenantId: string;
  stepId: string;
  capability: string;
  /** Executor attempt number, from 1. */
  attempt: number;
  /** Bus delivery number of this attempt, from 1 (above 1 only after a clean hand-back). */
  delivery: number;
  /** When the handler is aborted: the earliest of the step timeout, the attempt's and the goal's deadline. */
  deadline: Date;
  /** Aborted at `deadline`, when the goal or the attempt is cancelled, or when the agent stops. */
  signal: AbortSignal;
  /** Logger bound to the job's ids. */
  log: Logger;
  /** W3C trace id of the goal's trace (from the job's `traceparent`), when the job carried one. */
  traceId?: string | undefined;
  /** Tells the bus the job is alive (the SDK does this on its own while the handler runs). */
  working(): void;
}

export interface SkillDefinition<I = never, O = unknown> {
  /** What the skill does, for humans and planners. */
  description: string;
  /** JSON Schema the input must satisfy; jobs that do not fail terminally. Default: any object. */
  inputSchema?: JsonSchema;
  /** JSON Schema of the output; a handler returning something else fails terminally. */
  outputSchema?: JsonSchema;
  /** Discovery tags, e.g. `nlp`. */
  tags?: string[];
  /** Jobs of this skill run at once in one agent process. Default: `runAgent`'s `concurrency`. */
  maxConcurrency?: number;
  /**
   * Scope a goal's principal must hold for a step of this capability to be
   * dispatched, e.g. `tools:shell` (a role of that name, or a role listing it
   * in `scopes` in the policy data).
   */
  authScope?: string;
  /** Dispatches per second of this capability per tenant across the mesh; over it, steps wait. */
  rateLimit?: { perSecond: number; burst: number };
  /** What a call does outside the mesh; shown in the catalog, seen by the policy. */
  sideEffect?: SideEffectName;
  handler(input: I, ctx: SkillContext): unknown | Promise<unknown>;
  /** Output type witness; never set. */
  readonly __output?: O;
}

/** A declared side effect (`SideEffect` of the contract, by its short name). */
export type SideEffectName = "read_only" | "idempotent" | "destructive";

const sideEffectValues: Record<SideEffectName, SideEffect> = {
  read_only: SideEffect.READ_ONLY,
  idempotent: SideEffect.IDEMPOTENT,
  destructive: SideEffect.DESTRUCTIVE,
};

export interface AgentDefinitionInput {
  /** Stable name, lowercase words joined by `-`, e.g. `text`; the identity is `agent-<name>`. */
  name: string;
  /** Semantic version of the agent. */
  version: string;
  owner?: string;
  description?: string;
  labels?: Record<string, string>;
  /**
   * The card's Ed25519 signature as `agentmesh cards sign` prints it, shipped with the
   * agent's package so the process needs no private key (ADR-015). A signature that
   * does not match the card is refused by the registry; `runAgent`'s `signingKey` signs
   * at start instead.
   */
  signature?: { signer: string; signature: string };
  /**
   * Examples the registry runs against a new version before it takes live traffic:
   * a job input per capability and the JSON Schema its output must satisfy.
   */
  conformance?: ConformanceExampleInput[];
  // biome-ignore lint/suspicious/noExplicitAny: skills differ in input type; each handler is typed where defined.
  skills: Record<string, SkillDefinition<any, unknown>>;
}

/** One conformance example of a definition (`AgentDefinitionInput.conformance`). */
export interface ConformanceExampleInput {
  capability: string;
  input: JsonObject;
  expectedOutputSchema: JsonSchema;
  description?: string;
}

export interface AgentDefinition extends AgentDefinitionInput {
  /** Marks a checked definition. */
  readonly kind: "agentmesh.agent";
}

/**
 * Checks and freezes an agent definition; throws INVALID_ARGUMENT on a bad
 * name or skill. Names are checked by the contract's own rules
 * (`lib/proto/name-rules.ts`), the same the registry applies.
 */
export function defineAgent(definition: AgentDefinitionInput): AgentDefinition {
  const nameIssue = nameProblem(nameRules.agentName, definition.name);
  if (nameIssue !== undefined) {
    throw new MeshError(Code.InvalidArgument, `invalid agent name: ${nameIssue}`);
  }
  if (!definition.version) {
    throw new MeshError(Code.InvalidArgument, `agent ${definition.name} needs a version`);
  }
  const capabilities = Object.keys(definition.skills);
  if (capabilities.length === 0) {
    throw new MeshError(Code.InvalidArgument, `agent ${definition.name} offers no skills`);
  }
  for (const capability of capabilities) {
    const skill = definition.skills[capability]!;
    const capabilityIssue = nameProblem(nameRules.capability, capability);
    if (capabilityIssue !== undefined) {
      throw new MeshError(Code.InvalidArgument, `agent ${definition.name}: ${capabilityIssue}`);
    }
    if (typeof skill.handler !== "function") {
      throw new MeshError(Code.InvalidArgument, `skill ${capability} has no handler`);
    }
    if (skill.sideEffect !== undefined && !(skill.sideEffect in sideEffectValues)) {
      throw new MeshError(
        Code.InvalidArgument,
        `skill ${capability}: side effect must be one of ${Object.keys(sideEffectValues).join(", ")}`,
      );
    }
  }
  // The card's other rules (sizes) are checked at registration: protovalidate's first check
  // costs a few hundred ms, too much for a definition evaluated when its module is imported.
  return Object.freeze({ ...definition, kind: "agentmesh.agent" as const });
}

/** The registry's view of an agent: its card, built from the definition. */
export function agentCard(agent: AgentDefinition): AgentCard {
  return create(AgentCardSchema, {
    name: agent.name,
    version: agent.version,
    owner: agent.owner ?? "",
    description: agent.description ?? "",
    labels: agent.labels ?? {},
    skills: Object.entries(agent.skills).map(([capability, s]) => ({
      capability,
      description: s.description,
      ...(s.inputSchema ? { inputSchema: s.inputSchema } : {}),
      ...(s.outputSchema ? { outputSchema: s.outputSchema } : {}),
      tags: s.tags ?? [],
      maxConcurrency: s.maxConcurrency ?? 0,
    })),
    tools: Object.entries(agent.skills).flatMap(([capability, s]) =>
      hasToolMetadata(s) ? [skillTool(capability, s)] : [],
    ),
    ...(agent.signature ? { signature: agent.signature } : {}),
    conformance: (agent.conformance ?? []).map((c) => ({
      capability: c.capability,
      input: c.input,
      expectedOutputSchema: c.expectedOutputSchema,
      description: c.description ?? "",
    })),
  });
}

function hasToolMetadata(s: SkillDefinition<never, unknown>): boolean {
  return s.authScope !== undefined || s.rateLimit !== undefined || s.sideEffect !== undefined;
}

/**
 * A skill's scope, limit and side effect as the tool named like its
 * capability: the registry's record of capability metadata, which the
 * executors enforce at dispatch.
 */
function skillTool(
  capability: string,
  s: SkillDefinition<never, unknown>,
): MessageInitShape<typeof ToolSchema> {
  return {
    name: capability,
    description: s.description,
    authScope: s.authScope ?? "",
    ...(s.rateLimit
      ? { rateLimit: { perSecond: s.rateLimit.perSecond, burst: s.rateLimit.burst } }
      : {}),
    sideEffect: s.sideEffect ? sideEffectValues[s.sideEffect] : SideEffect.UNSPECIFIED,
    ...(s.inputSchema ? { inputSchema: s.inputSchema } : {}),
  };
}
