/**
 * The data agent (`agent-data`): JSON transforms written in JSONata, a
 * maintained, side-effect-free query and transformation language (no `eval`,
 * no I/O). Expressions are untrusted code: each evaluation runs in a sandbox
 * process with its own heap limit and a wall-clock kill (`jsonata-sandbox.ts`),
 * bounded in recursion depth, sequence length and input/output size; any limit
 * hit ends the job as a non-retryable failure, never a crash of this process.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `data.transform` | `{ expression, data?, bindings? }` | `{ result }` |
 *
 * @example
 * await transform("$sum(items.price)", { items: [{ price: 2 }, { price: 3 }] }); // 5
 */
import { type AgentError, nonRetryable } from "../sdk/agent/agent-error.js";
import { type AgentDefinition, defineAgent } from "../sdk/agent/define-agent.js";
import { type JsonataLimits, JsonataSandbox } from "./jsonata-sandbox.js";
import { refusalsReported } from "./sandbox-refusal.js";

export interface DataAgentOptions {
  /** Longest evaluation; the sandbox process is killed just after. Default 1,000 ms. */
  timeLimitMs?: number;
  /** Deepest expression recursion. Default 500. */
  maxDepth?: number;
  /** Longest sequence (array) an expression may build. Default 100,000. */
  maxSequence?: number;
  /** Largest input (`data` + `bindings`) and output, as JSON bytes. Default 256 KiB (the result must fit the bus). */
  maxBytes?: number;
  /** Heap of each sandbox process, in MiB. Default 128. */
  memoryMb?: number;
  /** Sandbox processes evaluating at once. Default min(4, CPUs). */
  sandboxSize?: number;
}

function limitsOf(options: DataAgentOptions): JsonataLimits {
  return {
    timeLimitMs: options.timeLimitMs ?? 1_000,
    maxDepth: options.maxDepth ?? 500,
    maxSequence: options.maxSequence ?? 100_000,
    maxBytes: options.maxBytes ?? 256 * 1024,
  };
}

let sharedSandbox: JsonataSandbox | undefined;

/** Evaluates a JSONata expression in the shared sandbox under the limits; every failure is non-retryable. */
export async function transform(
  expression: string,
  data: unknown,
  bindings: Record<string, unknown> = {},
  options: DataAgentOptions = {},
): Promise<unknown> {
  sharedSandbox ??= new JsonataSandbox();
  return sharedSandbox.evaluate({ expression, data, bindings, ...limitsOf(options) });
}

/** The JSONata sandbox's limits stopped it (not a bad expression, not a cancelled step). */
const isSandboxLimit = (err: AgentError) =>
  err.code === "RESOURCE_EXHAUSTED" || err.code === "DEADLINE_EXCEEDED";

export function createDataAgent(options: DataAgentOptions = {}): AgentDefinition {
  const limits = limitsOf(options);
  const maxBytes = limits.maxBytes;
  const sandbox = new JsonataSandbox({
    ...(options.memoryMb ? { memoryMb: options.memoryMb } : {}),
    ...(options.sandboxSize ? { size: options.sandboxSize } : {}),
  });
  // The first job should not wait for a process to start (idle processes keep nothing alive).
  sandbox.warm();
  return defineAgent({
    name: "data",
    version: "1.0.0",
    owner: "agentmesh",
    description:
      "JSON transforms in JSONata, sandboxed and bounded in time, memory, depth and size.",
    skills: {
      "data.transform": {
        sideEffect: "read_only",
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
        // Pull no more jobs than there are sandbox processes: the rest wait on the bus, not here.
        maxConcurrency: sandbox.size,
        handler: async (
          input: {
            expression: string;
            data?: unknown;
            bindings?: Record<string, unknown>;
          },
          ctx,
        ) => {
          const size = Buffer.byteLength(
            JSON.stringify([input.data ?? null, input.bindings ?? {}]),
          );
          // Over a sandbox limit (size, time, memory, depth): refused, and a security event.
          const result = await refusalsReported(ctx, "data", isSandboxLimit, async () => {
            if (size > maxBytes) {
              throw nonRetryable(`input is ${size} bytes, more than the limit of ${maxBytes}`, {
                code: "RESOURCE_EXHAUSTED",
                details: { bytes: size, maxBytes },
              });
            }
            return sandbox.evaluate({
              expression: input.expression,
              data: input.data,
              bindings: input.bindings ?? {},
              signal: ctx.signal,
              ...limits,
            });
          });
          return { result };
        },
      },
    },
  });
}
