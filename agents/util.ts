/**
 * The utility agent (`agent-util`): echo, sleep and a deliberately flaky skill,
 * for wiring checks, load tests and retry tests.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `util.echo` | any object | the same object |
 * | `util.sleep` | `{ ms }` (0–600000) | `{ sleptMs }` |
 * | `util.flaky` | `{ failTimes?, failRate?, message? }` | `{ tries }` |
 *
 * `util.flaky` fails the first `failTimes` tries of a step deterministically —
 * the try number is `attempt + delivery - 1`, so executor retries and bus
 * redeliveries both count — and otherwise fails with probability `failRate`.
 */
import { AgentError } from "../sdk/agent/agent-error.js";
import { defineAgent } from "../sdk/agent/define-agent.js";

export const utilAgent = defineAgent({
  name: "util",
  version: "1.0.0",
  owner: "agentmesh",
  description: "Echo, sleep and a flaky skill for wiring, load and retry tests.",
  skills: {
    "util.echo": {
      sideEffect: "read_only",
      description: "Returns its input unchanged.",
      inputSchema: { type: "object" },
      tags: ["test"],
      handler: (input: Record<string, unknown>) => input,
    },
    "util.sleep": {
      sideEffect: "read_only",
      description: "Waits `ms` milliseconds (stops early when the step is aborted).",
      inputSchema: {
        type: "object",
        properties: { ms: { type: "integer", minimum: 0, maximum: 600_000 } },
        required: ["ms"],
      },
      outputSchema: {
        type: "object",
        properties: { sleptMs: { type: "integer" } },
        required: ["sleptMs"],
      },
      tags: ["test"],
      handler: async ({ ms }: { ms: number }, ctx) => {
        const start = Date.now();
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, ms);
          ctx.signal.addEventListener(
            "abort",
            () => {
              clearTimeout(t);
              reject(new Error("aborted"));
            },
            { once: true },
          );
        });
        return { sleptMs: Date.now() - start };
      },
    },
    "util.flaky": {
      sideEffect: "read_only",
      description:
        "Fails the first `failTimes` tries, or at random with `failRate`, else succeeds.",
      inputSchema: {
        type: "object",
        properties: {
          failTimes: { type: "integer", minimum: 0 },
          failRate: { type: "number", minimum: 0, maximum: 1 },
          message: { type: "string", maxLength: 1_000 },
        },
        additionalProperties: false,
      },
      tags: ["test"],
      handler: (input: { failTimes?: number; failRate?: number; message?: string }, ctx) => {
        const tries = ctx.attempt + ctx.delivery - 1;
        const message = input.message ?? "flaky failure";
        if (input.failTimes !== undefined && tries <= input.failTimes) {
          throw new AgentError(`${message} (try ${tries} of ${input.failTimes} failing)`, {
            code: "FLAKY",
          });
        }
        if (input.failRate !== undefined && Math.random() < input.failRate) {
          throw new AgentError(`${message} (random, rate ${input.failRate})`, { code: "FLAKY" });
        }
        return { tries };
      },
    },
  },
});
