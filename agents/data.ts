/**
 * The data agent (`agent-data`): JSON transforms written in JSONata, a
 * maintained, side-effect-free query and transformation language (no `eval`,
 * no I/O). Every evaluation is bounded in time, recursion depth and size.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `data.transform` | `{ expression, data?, bindings? }` | `{ result }` |
 *
 * @example
 * await transform("$sum(items.price)", { items: [{ price: 2 }, { price: 3 }] }); // 5
 */
import type jsonata from "jsonata";
import { nonRetryable } from "../sdk/agent/agent-error.js";
import { type AgentDefinition, defineAgent } from "../sdk/agent/define-agent.js";

export interface DataAgentOptions {
  /** Longest evaluation. Default 1,000 ms. */
  timeLimitMs?: number;
  /** Deepest expression recursion. Default 500. */
  maxDepth?: number;
  /** Longest sequence (array) an expression may build. Default 100,000. */
  maxSequence?: number;
  /** Largest input (`data` + `bindings`) and output, as JSON bytes. Default 1 MiB. */
  maxBytes?: number;
}

/** Evaluates a JSONata expression under the limits; bad expressions fail as non-retryable. */
export async function transform(
  expression: string,
  data: unknown,
  bindings: Record<string, unknown> = {},
  options: DataAgentOptions = {},
): Promise<unknown> {
  const timeLimitMs = options.timeLimitMs ?? 1_000;
  const maxDepth = options.maxDepth ?? 500;
  const maxBytes = options.maxBytes ?? 1 << 20;
  const maxSequence = options.maxSequence ?? 100_000;
  // Loaded on the first transform rather than at start-up (300 KB of JavaScript to compile).
  const { default: compile } = await import("jsonata");
  let expr: jsonata.Expression;
  try {
    // JSONata's own guardrails bound the evaluation: wall time, recursion depth, sequence length.
    expr = compile(expression, { timeout: timeLimitMs, stack: maxDepth, sequence: maxSequence });
  } catch (err) {
    throw nonRetryable(`invalid expression: ${describe(err)}`, {
      code: "INVALID_ARGUMENT",
      details: position(err),
    });
  }
  let result: unknown;
  try {
    result = await expr.evaluate(data, bindings);
  } catch (err) {
    throw nonRetryable(`evaluation failed: ${describe(err)}`, {
      code: "INVALID_ARGUMENT",
      details: position(err),
    });
  }
  const json = JSON.stringify(result ?? null);
  if (Buffer.byteLength(json) > maxBytes) {
    throw nonRetryable(`result is larger than ${maxBytes} bytes`, { code: "RESOURCE_EXHAUSTED" });
  }
  // Sequences and functions are JSONata objects; keep only their JSON.
  return JSON.parse(json);
}

function describe(err: unknown): string {
  if (err && typeof err === "object" && "message" in err) {
    const e = err as { code?: string; message: string };
    return e.code ? `${e.code} ${e.message}` : e.message;
  }
  return String(err);
}

function position(err: unknown): Record<string, unknown> {
  if (err && typeof err === "object" && "position" in err) {
    const e = err as { position?: number; token?: string; code?: string };
    return { code: e.code, position: e.position, token: e.token };
  }
  return {};
}

export function createDataAgent(options: DataAgentOptions = {}): AgentDefinition {
  const maxBytes = options.maxBytes ?? 1 << 20;
  return defineAgent({
    name: "data",
    version: "1.0.0",
    owner: "agentmesh",
    description: "JSON transforms in JSONata, bounded in time, depth and size.",
    skills: {
      "data.transform": {
        description:
          "Evaluates a JSONata expression (https://jsonata.org) against `data`, with optional `bindings` as $variables.",
        inputSchema: {
          type: "object",
          properties: {
            expression: { type: "string", minLength: 1, maxLength: 10_000 },
            data: {},
            bindings: { type: "object" },
          },
          required: ["expression"],
          additionalProperties: false,
        },
        outputSchema: { type: "object", properties: { result: {} }, required: ["result"] },
        tags: ["data", "fast"],
        handler: async (input: {
          expression: string;
          data?: unknown;
          bindings?: Record<string, unknown>;
        }) => {
          const size = Buffer.byteLength(
            JSON.stringify([input.data ?? null, input.bindings ?? {}]),
          );
          if (size > maxBytes) {
            throw nonRetryable(`input is larger than ${maxBytes} bytes`, {
              code: "RESOURCE_EXHAUSTED",
            });
          }
          return {
            result: await transform(input.expression, input.data, input.bindings, options),
          };
        },
      },
    },
  });
}

export const dataAgent = createDataAgent();
