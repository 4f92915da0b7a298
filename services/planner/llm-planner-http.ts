/**
 * The LLM planner's HTTP adapter: an OpenAI-compatible `POST {endpoint}/chat/completions`
 * whose answer is held to the same rules as a playbook strategy
 * (`parseLlmStrategy`: shape, DAG, templates, every capability live).
 *
 * Off by default. `llmPlannerFromEnv` turns it on only when
 * `AGENTMESH_LLM_PLANNER_URL` is set:
 *
 * | Variable | Default | Meaning |
 * |---|---|---|
 * | `AGENTMESH_LLM_PLANNER_URL` | unset (off) | base URL, e.g. `https://api.openai.com/v1` |
 * | `AGENTMESH_LLM_PLANNER_MODEL` | required when on | model name |
 * | `AGENTMESH_LLM_PLANNER_API_KEY` | unset | the `llm-planner-api-key` secret (`lib/secrets`: this variable, the secrets directory or Vault), sent as `Authorization: Bearer`, never logged |
 * | `AGENTMESH_LLM_PLANNER_TIMEOUT_MS` | 20000 | time limit of one completion |
 * | `AGENTMESH_LLM_PLANNER_JSON_MODE` | `1` | `0` omits `response_format` for endpoints without it |
 *
 * Errors: network failures, 429 and 5xx → UNAVAILABLE; timeout → DEADLINE_EXCEEDED;
 * other 4xx (bad key, unknown model) → FAILED_PRECONDITION; a reply that is not
 * a valid plan, or too large → INVALID_ARGUMENT.
 *
 * @example
 * const llm = llmPlannerFromEnv(process.env, log, secrets); // undefined unless configured
 * const strategy = await llm?.propose({ goalKind, input, capabilities });
 */
import type { Strategy } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import { processSecrets } from "../../lib/secrets/open-secrets.js";
import type { SecretStore } from "../../lib/secrets/secret-store.js";
import {
  type LlmPlanner,
  type LlmPlannerOptions,
  type LlmPlanRequest,
  llmPlanMessages,
  parseLlmStrategy,
  validateLlmPlannerOptions,
} from "./domain/index.js";

export interface HttpLlmPlannerOptions extends Omit<LlmPlannerOptions, "enabled"> {
  /**
   * The API key, asked before each request (the secret store caches it, so a
   * rotated key is sent from the next request on); default none.
   */
  apiKey?: () => Promise<string | undefined>;
  /** Send `response_format: {type: "json_object"}`; default true. */
  jsonMode?: boolean;
  /** Largest response body read; default 1 MiB. */
  maxResponseBytes?: number;
  /** Request and outcome lines (never headers or the key); default none. */
  log?: Logger;
  /** Default the global `fetch`. */
  fetch?: typeof fetch;
}

/** An `LlmPlanner` over an OpenAI-compatible chat-completions endpoint. */
export function createHttpLlmPlanner(options: HttpLlmPlannerOptions): LlmPlanner {
  const resolved = validateLlmPlannerOptions({ ...options, enabled: true });
  const url = `${resolved.endpoint.replace(/\/+$/, "")}/chat/completions`;
  const maxBytes = options.maxResponseBytes ?? 1024 * 1024;
  const doFetch = options.fetch ?? fetch;
  const log = options.log;

  return {
    async propose(request: LlmPlanRequest, signal?: AbortSignal): Promise<Strategy> {
      const live = new Set(request.capabilities.map((c) => c.capability));
      if (live.size === 0) {
        throw new MeshError(Code.FailedPrecondition, "no live capabilities to plan with");
      }
      const body: Record<string, unknown> = {
        model: resolved.model,
        messages: llmPlanMessages(request),
        temperature: 0,
      };
      if (options.jsonMode !== false) body.response_format = { type: "json_object" };
      const headers: Record<string, string> = {
        "content-type": "application/json",
        accept: "application/json",
      };
      const apiKey = await options.apiKey?.();
      if (apiKey) headers.authorization = `Bearer ${apiKey}`;

      const timeout = AbortSignal.timeout(resolved.timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      const started = Date.now();
      const fields = { goalKind: request.goalKind, model: resolved.model, endpoint: url };
      let text: string;
      let status: number;
      try {
        const res = await doFetch(url, {
          method: "POST",
          headers,
          body: JSON.stringify(body),
          signal: combined,
          redirect: "error",
        });
        status = res.status;
        text = await readCapped(res, maxBytes);
      } catch (err) {
        throw transportError(err, signal, timeout, resolved.timeoutMs, fields, log);
      }
      log?.debug({ ...fields, status, ms: Date.now() - started }, "llm planner answered");
      if (status === 429 || status >= 500) {
        throw new MeshError(Code.Unavailable, `llm planner endpoint answered HTTP ${status}`);
      }
      if (status < 200 || status >= 300) {
        throw new MeshError(
          Code.FailedPrecondition,
          `llm planner endpoint rejected the request with HTTP ${status} (check its URL, model and API key)`,
          { retryable: false },
        );
      }
      return parseLlmStrategy(completionContent(text), live, resolved.maxSteps);
    },
  };
}

/**
 * The HTTP LLM planner configured by `AGENTMESH_LLM_PLANNER_*`, or undefined
 * when `AGENTMESH_LLM_PLANNER_URL` is unset (the default). Its key is the
 * `llm-planner-api-key` secret of `secrets` (default the process's store).
 * Throws INVALID_ARGUMENT for a bad URL, a missing model or a bad timeout.
 */
export function llmPlannerFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  log?: Logger,
  secrets?: Pick<SecretStore, "get">,
): LlmPlanner | undefined {
  const endpoint = env.AGENTMESH_LLM_PLANNER_URL?.trim();
  if (!endpoint) return undefined;
  const timeout = env.AGENTMESH_LLM_PLANNER_TIMEOUT_MS;
  return createHttpLlmPlanner({
    endpoint,
    model: env.AGENTMESH_LLM_PLANNER_MODEL?.trim() ?? "",
    apiKey: async () => (secrets ?? (await processSecrets())).get("llm-planner-api-key"),
    timeoutMs: timeout ? Number(timeout) : undefined,
    jsonMode: env.AGENTMESH_LLM_PLANNER_JSON_MODE !== "0",
    log,
  });
}

/** The body as text, failing once it exceeds `maxBytes`. */
async function readCapped(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw tooLarge(maxBytes);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

const tooLarge = (maxBytes: number) =>
  new MeshError(Code.InvalidArgument, `llm planner reply exceeds ${maxBytes} bytes`, {
    retryable: false,
  });

function transportError(
  err: unknown,
  signal: AbortSignal | undefined,
  timeout: AbortSignal,
  timeoutMs: number,
  fields: Record<string, unknown>,
  log: Logger | undefined,
): MeshError {
  if (err instanceof MeshError) return err;
  if (signal?.aborted) {
    return new MeshError(Code.Canceled, "llm planner request was cancelled", { cause: err });
  }
  if (timeout.aborted) {
    log?.warn({ ...fields, timeoutMs }, "llm planner timed out");
    return new MeshError(Code.DeadlineExceeded, `llm planner did not answer within ${timeoutMs}ms`);
  }
  // The cause is a fetch error (no request headers in it); log its message only.
  log?.warn({ ...fields, error: (err as Error)?.message }, "llm planner unreachable");
  return new MeshError(Code.Unavailable, "llm planner endpoint is unreachable", { cause: err });
}

/** `choices[0].message.content` of a chat-completions body, or INVALID_ARGUMENT. */
function completionContent(text: string): string {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new MeshError(Code.InvalidArgument, "llm planner endpoint answered with non-JSON", {
      retryable: false,
    });
  }
  const content = (body as { choices?: Array<{ message?: { content?: unknown } }> } | null)
    ?.choices?.[0]?.message?.content;
  if (typeof content !== "string" || content.trim() === "") {
    throw new MeshError(
      Code.InvalidArgument,
      "llm planner reply has no choices[0].message.content",
      { retryable: false },
    );
  }
  return content;
}
