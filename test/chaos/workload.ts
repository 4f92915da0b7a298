/**
 * The chaos suite's workload: a steady stream of goals of mixed kinds, each
 * submitted through the gateway with an idempotency key and retried with the
 * same key until the mesh acknowledges it, as a careful
 * client does. Every kind here must succeed: a goal that ends otherwise is a
 * goal the fault made fail.
 *
 * | kind | steps |
 * | --- | --- |
 * | `echo` | util.echo |
 * | `slow-chain` (a tenant playbook, `putSlowChain`) | util.sleep 3 s → util.echo |
 * | `summarize` | text.summarize |
 * | `analyze-text` | text.stats, text.keywords, text.summarize → data.transform |
 * | `flaky-demo` (failTimes 1) | util.flaky, failing its first try |
 */
import { randomBytes } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ChaosMesh } from "./chaos-mesh.js";

/** How long the slow step sleeps. */
export const slowStepMs = 3_000;

const text =
  "Agents run steps. The executor merges their results. The planner picks a strategy. " +
  "Learning keeps what worked.";

export interface GoalKind {
  kind: string;
  input(key: string): JsonObject;
}

/** The mix, submitted round robin. */
export const goalMix: GoalKind[] = [
  { kind: "echo", input: (key) => ({ message: key }) },
  { kind: "slow-chain", input: (key) => ({ message: key }) },
  { kind: "summarize", input: () => ({ text, sentences: 1 }) },
  { kind: "analyze-text", input: () => ({ text }) },
  { kind: "flaky-demo", input: () => ({ failTimes: 1 }) },
];

/** Tenant acme's `slow-chain` playbook: a slow util.sleep step, then util.echo of the message. */
export async function putSlowChain(mesh: ChaosMesh): Promise<void> {
  await mesh.client(0).planner.putPlaybook({
    playbook: {
      goalKind: "slow-chain",
      description: "A slow step, then an echo.",
      strategies: [
        {
          name: "chain",
          outputStep: "after",
          steps: [
            {
              stepId: "slow",
              capability: "util.sleep",
              input: { ms: slowStepMs },
              timeout: { seconds: 10n },
            },
            {
              stepId: "after",
              capability: "util.echo",
              dependsOn: ["slow"],
              // biome-ignore lint/suspicious/noTemplateCurlyInString: step templates
              input: { message: "${input.message}", slept: "${steps.slow.output.sleptMs}" },
              timeout: { seconds: 10n },
            },
          ],
        },
      ],
    },
  });
}

export interface Submitted {
  key: string;
  kind: string;
  goalId: string;
  /** When the first try was sent (epoch ms). */
  sentAt: number;
  /** When the mesh acknowledged it (epoch ms). */
  ackedAt: number;
}

export interface WorkloadResult {
  /** Every submission the mesh acknowledged. */
  acked: Submitted[];
  /** Submissions never acknowledged within the retry window. */
  unacked: string[];
  /** Failed tries (later retried) by code name. */
  failures: Record<string, number>;
  /** The first few failure messages. */
  samples: string[];
}

export interface Workload {
  /** Stops submitting; resolves when every submission is acknowledged or given up. */
  stop(): Promise<WorkloadResult>;
  readonly acked: number;
}

export interface WorkloadOptions {
  /** Goals per second. */
  rate: number;
  /** How long one submission is retried before it counts as not acknowledged. Default 120 s. */
  retryForMs?: number;
}

/** Submits goals of the mix at a steady rate until `stop()`. */
export function startWorkload(mesh: ChaosMesh, options: WorkloadOptions): Workload {
  const batch = new GoalBatch(mesh, { retryForMs: options.retryForMs ?? 120_000 });
  let n = 0;
  const timer = setInterval(() => batch.submit(n++), 1000 / options.rate);
  return {
    get acked() {
      return batch.acked.length;
    },
    async stop() {
      clearInterval(timer);
      return batch.done();
    },
  };
}

/** Goals submitted one by one (`submit`), each retried with its key until acknowledged. */
export class GoalBatch {
  readonly acked: Submitted[] = [];
  readonly #unacked: string[] = [];
  readonly #failures: Record<string, number> = {};
  readonly #samples: string[] = [];
  readonly #pending = new Set<Promise<void>>();
  // Keys unique to this batch: a later one must not find an earlier one's goals.
  readonly #run = randomBytes(4).toString("hex");

  readonly #mesh: ChaosMesh;
  readonly #retryForMs: number;
  readonly #mix: GoalKind[];

  constructor(mesh: ChaosMesh, options: { retryForMs?: number; mix?: GoalKind[] } = {}) {
    this.#mesh = mesh;
    this.#retryForMs = options.retryForMs ?? 120_000;
    this.#mix = options.mix ?? goalMix;
  }

  submit(seq: number): void {
    const p = this.#submit(seq).finally(() => this.#pending.delete(p));
    this.#pending.add(p);
  }

  async done(): Promise<WorkloadResult> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
    return {
      acked: this.acked,
      unacked: this.#unacked,
      failures: this.#failures,
      samples: this.#samples,
    };
  }

  async #submit(seq: number): Promise<void> {
    const { kind, input } = this.#mix[seq % this.#mix.length]!;
    const key = `${this.#run}-${seq}`;
    const sentAt = Date.now();
    const end = sentAt + this.#retryForMs;
    for (let attempt = 0; ; attempt++) {
      const gateway = (seq + attempt) % this.#mesh.gateways;
      try {
        const { goal } = await this.#mesh
          .client(gateway)
          .executor.submitGoal(
            { kind, input: input(key), idempotencyKey: key },
            { timeoutMs: 10_000 },
          );
        this.acked.push({ key, kind, goalId: goal!.goalId, sentAt, ackedAt: Date.now() });
        return;
      } catch (err) {
        const e = ConnectError.from(err);
        // gRPC's names (UNAVAILABLE), as the CLI and the docs spell them.
        const code = (Code[e.code] ?? String(e.code))
          .replace(/([a-z])([A-Z])/g, "$1_$2")
          .toUpperCase();
        this.#failures[code] = (this.#failures[code] ?? 0) + 1;
        if (this.#samples.length < 8)
          this.#samples.push(`${kind} via gateway#${gateway}: ${code}: ${e.rawMessage}`);
        if (Date.now() > end) {
          this.#unacked.push(key);
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(2_000, 250 * 2 ** attempt)));
      }
    }
  }
}
