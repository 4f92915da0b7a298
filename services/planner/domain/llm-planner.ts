/**
 * The optional LLM planner: for a goal kind without a playbook, ask an
 * OpenAI-compatible chat endpoint for a strategy, then hold its answer to the
 * same rules as a playbook (shape, DAG, templates, capabilities that exist).
 * Off by default; this module is the contract and the validation, the HTTP
 * call lives in the adapter.
 *
 * @example
 * const options = validateLlmPlannerOptions({ enabled: true, endpoint: "http://127.0.0.1:11434/v1", model: "llama3" });
 * const messages = llmPlanMessages({ goalKind, input, capabilities });
 * // ... POST { model, messages } to `${endpoint}/chat/completions` ...
 * const strategy = parseLlmStrategy(reply, new Set(capabilities.map((c) => c.capability)));
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the prompt explains step templates
import type { JsonObject } from "@bufbuild/protobuf";
import type { Strategy } from "../../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import { missingCapabilities } from "./plan.js";
import { readPlaybook } from "./playbook-file.js";
import { validateStrategy } from "./validate-playbook.js";
import { type FieldPath, type Violation, violationsError } from "./violation.js";

export interface LlmPlannerOptions {
  /** Whether the LLM planner is consulted at all. Default false. */
  enabled: boolean;
  /** Base URL of an OpenAI-compatible API, e.g. `https://api.openai.com/v1`. */
  endpoint: string;
  /** Model name sent with each request. */
  model: string;
  /** Time limit of one completion; default 20s. */
  timeoutMs?: number;
  /** Largest plan accepted; default 20 steps. */
  maxSteps?: number;
}

/** One chat message of the request. */
export interface ChatMessage {
  role: "system" | "user";
  content: string;
}

/** What the LLM planner is told about the goal and the mesh. */
export interface LlmPlanRequest {
  goalKind: string;
  description?: string;
  input?: JsonObject | undefined;
  /** Live capabilities with their descriptions. */
  capabilities: ReadonlyArray<{ capability: string; description: string }>;
}

/** Plans a goal kind without a playbook. Implementations call the endpoint. */
export interface LlmPlanner {
  propose(request: LlmPlanRequest, signal?: AbortSignal): Promise<Strategy>;
}

/** Checks options; throws INVALID_ARGUMENT naming the bad field. Disabled options pass as they are. */
export function validateLlmPlannerOptions(options: LlmPlannerOptions): Required<LlmPlannerOptions> {
  const bad = (field: string, why: string) =>
    new MeshError(Code.InvalidArgument, `llm planner ${field}: ${why}`, { retryable: false });
  const resolved = {
    ...options,
    timeoutMs: options.timeoutMs ?? 20_000,
    maxSteps: options.maxSteps ?? 20,
  };
  if (!options.enabled) return resolved;
  let url: URL;
  try {
    url = new URL(options.endpoint);
  } catch {
    throw bad("endpoint", `"${options.endpoint}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw bad("endpoint", "must be an http(s) URL");
  }
  if (url.username !== "" || url.password !== "") {
    throw bad(
      "endpoint",
      "must not contain credentials; the key is the llm-planner-api-key secret",
    );
  }
  if (options.model.trim() === "") throw bad("model", "is required");
  if (!(resolved.timeoutMs > 0 && resolved.timeoutMs <= 300_000)) {
    throw bad("timeoutMs", "must be between 1ms and 5 minutes");
  }
  if (
    !(Number.isInteger(resolved.maxSteps) && resolved.maxSteps >= 1 && resolved.maxSteps <= 200)
  ) {
    throw bad("maxSteps", "must be an integer between 1 and 200");
  }
  return resolved;
}

/** The chat messages asking for a strategy in the playbook format (as JSON). */
export function llmPlanMessages(request: LlmPlanRequest): ChatMessage[] {
  const capabilities = request.capabilities
    .map((c) => `- ${c.capability}: ${c.description}`)
    .join("\n");
  return [
    {
      role: "system",
      content: [
        "You plan work for an agent mesh. Answer with one JSON object and nothing else:",
        '{"name": "llm", "steps": [{"id": "...", "capability": "...", "input": {...}, "depends_on": ["..."]}], "output_step": "..."}',
        "Use only these capabilities:",
        capabilities,
        'Inputs may use "${input.<field>}" for the goal input and "${steps.<id>.output.<field>}" for the output of a step listed in depends_on.',
      ].join("\n"),
    },
    {
      role: "user",
      content: `Goal kind: ${request.goalKind}\n${request.description ?? ""}\nInput: ${JSON.stringify(
        request.input ?? {},
      )}`,
    },
  ];
}

/**
 * Parses and validates an LLM's answer (a JSON strategy, optionally inside a
 * ```json fence). Throws INVALID_ARGUMENT listing every problem, including
 * capabilities that are not live.
 */
export function parseLlmStrategy(
  reply: string,
  liveCapabilities: ReadonlySet<string>,
  maxSteps = 20,
): Strategy {
  const fenced = /```(?:json)?\s*([\s\S]*?)```/.exec(reply);
  const text = (fenced?.[1] ?? reply).trim();
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new MeshError(
      Code.InvalidArgument,
      "llm planner answered with something that is not JSON",
      {
        retryable: false,
      },
    );
  }
  const violations: Violation[] = [];
  const add = (path: FieldPath, message: string) => violations.push({ path, message });
  const named =
    raw !== null && typeof raw === "object" && !Array.isArray(raw) && !("name" in raw)
      ? { ...raw, name: "llm" }
      : raw;
  const strategy = readPlaybook({ goal_kind: "llm", strategies: [named] }, violations)
    .strategies[0];
  if (strategy === undefined || violations.length > 0) {
    throw violationsError("invalid plan from the llm planner", violations);
  }
  validateStrategy(strategy, [], add);
  if (strategy.steps.length > maxSteps) add(["steps"], `at most ${maxSteps} steps`);
  const missing = missingCapabilities(strategy, liveCapabilities);
  if (missing.length > 0) add(["steps"], `unknown capabilities: ${missing.join(", ")}`);
  if (violations.length > 0) throw violationsError("invalid plan from the llm planner", violations);
  return strategy;
}
