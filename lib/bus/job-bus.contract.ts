/**
 * The delivery contract every JobBus implementation passes. Each implementation's
 * test file calls `describeJobBusContract` with a factory for a fresh, isolated bus
 * (short ack wait, few deliveries) and a cleanup.
 */
import { create, fromJson, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import {
  CancelSignalSchema,
  OutcomeSchema,
  type StepJob,
  StepJobSchema,
  type StepResult,
  StepResultSchema,
  StepResultStatus,
  TrainingJobSchema,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, isMeshError } from "../errors/mesh-error.js";
import { runId } from "../testing/infra.js";
import type { BusOptions, Delivery, JobBus } from "./job-bus.js";

/** Settings the suite's timing assumptions rely on. */
export const contractBusOptions: Required<Pick<BusOptions, "ackWaitMs" | "maxDeliver">> = {
  ackWaitMs: 800,
  maxDeliver: 3,
};

export interface ContractHarness {
  /** A fresh bus with `contractBusOptions` and a prefix of its own. */
  bus: JobBus;
  /** A second bus on the same prefix (another process's view), where the implementation has one. */
  peer?: JobBus;
  cleanup(): Promise<void>;
}

export function waitFor(
  check: () => boolean,
  timeoutMs = 8_000,
  what = "condition",
): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    tick();
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function stepJob(
  capability: string,
  overrides: Omit<MessageInitShape<typeof StepJobSchema>, "capability"> = {},
): StepJob {
  return create(StepJobSchema, {
    attemptId: runId("a"),
    goalId: "g1",
    tenantId: "acme",
    stepId: "s1",
    capability,
    attempt: 1,
    input: { text: "hello" },
    timeout: durationFromMs(5_000),
    dispatchedAt: timestampFromMs(Date.now()),
    ...overrides,
  } as MessageInitShape<typeof StepJobSchema>);
}

function stepResult(attemptId: string, status = StepResultStatus.SUCCEEDED): StepResult {
  return create(StepResultSchema, {
    attemptId,
    goalId: "g1",
    tenantId: "acme",
    stepId: "s1",
    attempt: 1,
    agentId: "agent-test",
    status,
  });
}

export function describeJobBusContract(
  name: string,
  /** Undefined when the implementation's server is absent: the suite skips. */
  setup: (() => Promise<ContractHarness>) | undefined,
): void {
  let h!: ContractHarness;
  beforeAll(async () => {
    if (setup) h = await setup();
  });
  afterAll(async () => {
    await h?.cleanup();
  });
  const bus = () => h.bus;
  // Each test uses its own capability so leftovers never cross tests.
  const cap = () => `test.${runId("c")}`;

  describe.skipIf(!setup)(`${name}: job bus contract`, () => {
    it("delivers a published job once with its id, attempt and trace context", async () => {
      const c = cap();
      const job = stepJob(c);
      const got: Delivery<StepJob>[] = [];
      const sub = await bus().consumeJobs(c, {
        handler: (d) => {
          got.push(d);
        },
      });
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const ack = await bus().publishJob(job, { traceparent });
      expect(ack.duplicate).toBe(false);
      await waitFor(() => got.length === 1);
      const d = got[0]!;
      expect(d.data.attemptId).toBe(job.attemptId);
      expect(d.data.input).toEqual({ text: "hello" });
      expect(d.msgId).toBe(job.attemptId);
      expect(d.deliveryCount).toBe(1);
      expect(d.traceparent).toBe(traceparent);
      expect(d.subject).toBe(`${bus().options.prefix}.jobs.${c}`);
      await sleep(contractBusOptions.ackWaitMs + 300);
      expect(got).toHaveLength(1); // auto-acked when the handler returned
      await sub.stop();
    });

    it("drops a republished attempt id as a duplicate", async () => {
      const c = cap();
      const job = stepJob(c);
      expect((await bus().publishJob(job)).duplicate).toBe(false);
      expect((await bus().publishJob(job)).duplicate).toBe(true);
      let n = 0;
      const sub = await bus().consumeJobs(c, {
        handler: () => {
          n++;
        },
      });
      await waitFor(() => n === 1);
      await sleep(200);
      expect(n).toBe(1);
      await sub.stop();
    });

    it("redelivers an unsettled delivery after the ack wait; working() postpones it", async () => {
      const c = cap();
      const deliveries: Array<{ n: number; at: number }> = [];
      const parked: Delivery<StepJob>[] = [];
      const sub = await bus().consumeJobs(c, {
        concurrency: 2,
        handler: async (d) => {
          deliveries.push({ n: d.deliveryCount, at: Date.now() });
          if (d.deliveryCount === 1) {
            // Keep it alive past one ack wait with working(), then go silent.
            await sleep(contractBusOptions.ackWaitMs * 0.6);
            d.working();
            await sleep(contractBusOptions.ackWaitMs * 0.6);
            parked.push(d);
            await new Promise(() => {}); // hang; only redelivery can help
          }
          d.ack();
        },
      });
      const t0 = Date.now();
      await bus().publishJob(stepJob(c));
      await waitFor(() => deliveries.length === 2, 10_000, "redelivery");
      expect(deliveries[1]!.n).toBe(2);
      // working() at 0.6 × ack wait moved the deadline to ≥ 1.6 × ack wait.
      expect(deliveries[1]!.at - t0).toBeGreaterThanOrEqual(contractBusOptions.ackWaitMs * 1.5);
      await sub.stop({ graceMs: 10 });
    });

    it("nak(delay) redelivers no earlier than the delay", async () => {
      const c = cap();
      const at: number[] = [];
      const sub = await bus().consumeJobs(c, {
        handler: (d) => {
          at.push(Date.now());
          if (d.deliveryCount === 1) d.nak(300);
        },
      });
      await bus().publishJob(stepJob(c));
      await waitFor(() => at.length === 2);
      expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(250);
      await sub.stop();
    });

    it("tells a redelivery whether its previous delivery was handed back or lost", async () => {
      const c = cap();
      const seen: string[] = [];
      const sub = await bus().consumeJobs(c, {
        concurrency: 2,
        handler: async (d) => {
          seen.push(`${d.deliveryCount}:${await d.previousDelivery()}`);
          if (d.deliveryCount === 1) return d.nak(0); // a clean hand-back
          if (d.deliveryCount === 2) await new Promise(() => {}); // silent: lost after the ack wait
          d.ack();
        },
      });
      await bus().publishJob(stepJob(c));
      await waitFor(() => seen.length === 3, 10_000, "three deliveries");
      expect(seen).toEqual(["1:none", "2:handed-back", "3:lost"]);
      await sub.stop({ graceMs: 10 });
    });

    it("refuses a message above the max payload with RESOURCE_EXHAUSTED naming its size", async () => {
      const big = stepResult(runId("a"));
      big.output = fromJson(ValueSchema, { text: "x".repeat(9 * 1024 * 1024) });
      const err = await bus()
        .publishResult(big)
        .catch((e: unknown) => e);
      expect(isMeshError(err) && err.code === Code.ResourceExhausted).toBe(true);
      expect(isMeshError(err) && err.retryable).toBe(false);
      expect(String((err as Error).message)).toMatch(/of \d{7,} bytes .* max payload of \d+ bytes/);
    });

    it("term() removes a message for good", async () => {
      const c = cap();
      let n = 0;
      const sub = await bus().consumeJobs(c, {
        handler: (d) => {
          n++;
          d.term();
        },
      });
      await bus().publishJob(stepJob(c));
      await waitFor(() => n === 1);
      await sleep(contractBusOptions.ackWaitMs + 400);
      expect(n).toBe(1);
      const s = (await bus().stats()).find((x) => x.capability === c);
      expect(s?.depth ?? 0).toBe(0);
      await sub.stop();
    });

    it("dead-letters a message after max deliveries, with the reason, and removes it", async () => {
      const c = cap();
      const job = stepJob(c);
      let n = 0;
      const sub = await bus().consumeJobs(c, {
        backoff: () => 20,
        handler: () => {
          n++;
          throw new Error("always fails");
        },
      });
      await bus().publishJob(job);
      let letters: Awaited<ReturnType<JobBus["listDeadLetters"]>> = [];
      const deadline = Date.now() + 10_000;
      while (letters.length === 0 && Date.now() < deadline) {
        await sleep(100);
        letters = await bus().listDeadLetters({ capability: c });
      }
      expect(n).toBe(contractBusOptions.maxDeliver);
      expect(letters).toHaveLength(1);
      const letter = letters[0]!;
      expect(letter.reason).toMatch(/max deliveries \(3\) exceeded/);
      expect(letter.deliveries).toBe(3);
      expect(letter.subject).toBe(`${bus().options.prefix}.jobs.${c}`);
      expect(Buffer.from(letter.payload).equals(toBinary(StepJobSchema, job))).toBe(true);
      await sleep(200);
      const s = (await bus().stats()).find((x) => x.capability === c);
      expect(s?.depth ?? 0).toBe(0);
      await sub.stop();
    });

    it("deadLetter(reason) moves a message with the caller's reason", async () => {
      const c = cap();
      const sub = await bus().consumeJobs(c, {
        handler: (d) => d.deadLetter("handler gave up: boom"),
      });
      await bus().publishJob(stepJob(c));
      let letters: Awaited<ReturnType<JobBus["listDeadLetters"]>> = [];
      const deadline = Date.now() + 5_000;
      while (letters.length === 0 && Date.now() < deadline) {
        await sleep(50);
        letters = await bus().listDeadLetters({ capability: c });
      }
      expect(letters[0]?.reason).toBe("handler gave up: boom");
      expect(letters[0]?.deliveries).toBe(1);
      // Counted per queue for the dead-letter gauge.
      expect((await bus().deadLetterCounts()).get(c)).toBe(1);
      await sub.stop();
    });

    it("never redelivers a job that waited behind busy handlers past the ack wait", async () => {
      const c = cap();
      const deliveries: { attemptId: string; count: number }[] = [];
      // One handler slot, four jobs pulled at once, each taking half an ack wait:
      // the last one waits twice the ack wait before it starts.
      const sub = await bus().consumeJobs(c, {
        concurrency: 1,
        prefetch: 4,
        handler: async (d) => {
          deliveries.push({ attemptId: d.data.attemptId, count: d.deliveryCount });
          await sleep(contractBusOptions.ackWaitMs / 2);
        },
      });
      const jobs = Array.from({ length: 4 }, () => stepJob(c));
      await Promise.all(jobs.map((j) => bus().publishJob(j)));
      await waitFor(() => deliveries.length >= 4, 10_000);
      await sleep(contractBusOptions.ackWaitMs + 300);
      expect(deliveries.map((d) => d.count)).toEqual([1, 1, 1, 1]);
      expect(new Set(deliveries.map((d) => d.attemptId)).size).toBe(4);
      await sub.stop();
    });

    it("honours the concurrency limit and shares a capability's queue between subscribers", async () => {
      const c = cap();
      let running = 0;
      let peak = 0;
      const seen: string[] = [];
      const handler = async (d: Delivery<StepJob>) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(30);
        seen.push(d.data.attemptId);
        running--;
      };
      const a = await bus().consumeJobs(c, { concurrency: 2, handler });
      const other = h.peer ?? bus();
      const b = await other.consumeJobs(c, { concurrency: 1, handler });
      const jobs = Array.from({ length: 12 }, () => stepJob(c));
      await Promise.all(jobs.map((j) => bus().publishJob(j)));
      await waitFor(() => seen.length === 12);
      expect(peak).toBeLessThanOrEqual(3);
      expect(peak).toBeGreaterThanOrEqual(2);
      expect(new Set(seen).size).toBe(12);
      await Promise.all([a.stop(), b.stop()]);
    });

    it("delivers a job pinned to an agent version only to that version's consumers", async () => {
      const c = cap();
      const got = { shared: [] as string[], v1: [] as string[], v2: [] as string[] };
      const on = (into: string[]) => (d: Delivery<StepJob>) => {
        into.push(d.data.attemptId);
      };
      const subs = [
        await bus().consumeJobs(c, { handler: on(got.shared) }),
        await bus().consumeJobs(c, { agentVersion: "1.4.0", handler: on(got.v1) }),
        await (h.peer ?? bus()).consumeJobs(c, { agentVersion: "2.1.0", handler: on(got.v2) }),
      ];
      const pinned = Array.from({ length: 6 }, () => stepJob(c, { agentVersion: "2.1.0" }));
      const free = stepJob(c);
      await Promise.all([...pinned, free].map((j) => bus().publishJob(j)));
      await waitFor(() => got.v2.length === 6 && got.shared.length === 1);
      await sleep(200);
      expect(got.v2.sort()).toEqual(pinned.map((j) => j.attemptId).sort());
      expect(got.shared).toEqual([free.attemptId]);
      expect(got.v1).toEqual([]);
      await Promise.all(subs.map((s) => s.stop()));
    });

    it("stop() lets a handler finish within the grace period and hands back the rest", async () => {
      const c = cap();
      const firstRun: Delivery<StepJob>[] = [];
      const a = await bus().consumeJobs(c, {
        handler: async (d) => {
          firstRun.push(d);
          await new Promise(() => {}); // never finishes
        },
      });
      await bus().publishJob(stepJob(c));
      await waitFor(() => firstRun.length === 1);
      const t0 = Date.now();
      const r = await a.stop({ graceMs: 100 });
      expect(r).toEqual({ finished: 0, handedBack: 1 });
      const again: number[] = [];
      const b = await bus().consumeJobs(c, {
        handler: (d) => {
          again.push(d.deliveryCount);
        },
      });
      await waitFor(() => again.length === 1);
      // Handed back at once: no wait for the ack wait.
      expect(Date.now() - t0).toBeLessThan(contractBusOptions.ackWaitMs);
      // NATS 2.9 may count the handed-back delivery as undelivered (its pull request
      // closed with the subscription), so only the prompt redelivery is asserted.
      expect(again).toHaveLength(1);
      await b.stop();
    });

    it("shares results between executor replicas, each result once, deduplicated by attempt and status", async () => {
      const got: string[] = [];
      const handler = (d: Delivery<StepResult>) => {
        got.push(`${d.data.attemptId}/${d.data.status}`);
      };
      const a = await bus().consumeResults({ concurrency: 4, handler });
      const b = await (h.peer ?? bus()).consumeResults({ concurrency: 4, handler });
      const ids = Array.from({ length: 10 }, () => runId("a"));
      for (const id of ids) {
        await bus().publishResult(stepResult(id, StepResultStatus.STARTED));
        await bus().publishResult(stepResult(id));
        expect((await bus().publishResult(stepResult(id))).duplicate).toBe(true);
      }
      await waitFor(() => got.length === 20);
      await sleep(100);
      expect(got).toHaveLength(20);
      expect(new Set(got).size).toBe(20);
      await Promise.all([a.stop(), b.stop()]);
    });

    it("replays a goal's events, then follows new ones, and only that goal's", async () => {
      const goal = runId("g");
      const ev = (goalId: string, sequence: number) =>
        create(GoalEventSchema, {
          goalId,
          tenantId: "acme",
          sequence: BigInt(sequence),
          time: timestampFromMs(Date.now()),
          kind: { case: "submitted", value: {} },
        });
      await bus().publishGoalEvent(ev(goal, 1));
      await bus().publishGoalEvent(ev(runId("g"), 1));
      await bus().publishGoalEvent(ev(goal, 2));
      const feed = await bus().subscribeGoalEvents("acme", goal);
      const seqs: bigint[] = [];
      const reading = (async () => {
        for await (const e of feed) {
          seqs.push(e.sequence);
          if (seqs.length === 3) break;
        }
      })();
      await waitFor(() => seqs.length === 2);
      expect((await bus().publishGoalEvent(ev(goal, 2))).duplicate).toBe(true);
      await bus().publishGoalEvent(ev(goal, 3));
      await reading;
      expect(seqs).toEqual([1n, 2n, 3n]);
      await feed.stop();
    });

    it("purges every stored event of one tenant's goals and no other tenant's", async () => {
      const [erased, kept] = [runId("erased"), runId("kept")];
      const ev = (tenantId: string, goalId: string) =>
        create(GoalEventSchema, {
          goalId,
          tenantId,
          sequence: 1n,
          time: timestampFromMs(Date.now()),
          kind: { case: "submitted", value: {} },
        });
      const [g1, g2, g3] = [runId("g"), runId("g"), runId("g")];
      await bus().publishGoalEvent(ev(erased, g1));
      await bus().publishGoalEvent(ev(erased, g2));
      await bus().publishGoalEvent(ev(kept, g3));
      expect(await bus().purgeGoalEvents(erased)).toBe(2);
      const first = async (tenantId: string, goalId: string) => {
        const feed = await bus().subscribeGoalEvents(tenantId, goalId);
        const seen: bigint[] = [];
        const reading = (async () => {
          for await (const e of feed) seen.push(e.sequence);
        })();
        await new Promise((r) => setTimeout(r, 300));
        await feed.stop();
        await reading;
        return seen;
      };
      expect(await first(erased, g1)).toEqual([]);
      expect(await first(kept, g3)).toEqual([1n]);
    });

    it("carries outcomes and training jobs to the learning consumers", async () => {
      const outcomes: string[] = [];
      const runs: string[] = [];
      const o = await bus().consumeOutcomes({
        handler: (d) => {
          outcomes.push(d.data.goalId);
        },
      });
      const t = await bus().consumeTraining({
        handler: (d) => {
          runs.push(d.data.runId);
        },
      });
      const goal = runId("g");
      const run = runId("r");
      await bus().publishOutcome(create(OutcomeSchema, { goalId: goal, success: true }));
      await bus().publishTraining(create(TrainingJobSchema, { runId: run, reason: "manual" }));
      await waitFor(() => outcomes.length === 1 && runs.length === 1);
      expect(outcomes).toEqual([goal]);
      expect(runs).toEqual([run]);
      await Promise.all([o.stop(), t.stop()]);
    });

    it("broadcasts cancel signals to every listener and to the goal's listeners", async () => {
      const goal = runId("g");
      const all: string[] = [];
      const mine: string[] = [];
      const u1 = (h.peer ?? bus()).subscribeCancel((s) => all.push(s.goalId));
      const u2 = bus().subscribeCancel((s) => mine.push(s.reason), goal);
      await sleep(50); // let the subscriptions reach the server
      await bus().publishCancel(create(CancelSignalSchema, { goalId: goal, reason: "user" }));
      await bus().publishCancel(create(CancelSignalSchema, { goalId: runId("g"), reason: "x" }));
      await waitFor(() => all.length === 2 && mine.length === 1);
      expect(mine).toEqual(["user"]);
      u1.unsubscribe();
      u2.unsubscribe();
    });

    it("reports depth and lag of a capability with no agent", async () => {
      const c = cap();
      await bus().ensureCapability(c);
      await bus().publishJob(stepJob(c));
      await bus().publishJob(stepJob(c));
      const s = (await bus().stats()).find((x) => x.capability === c);
      expect(s).toMatchObject({ capability: c, depth: 2, lag: 2, ackPending: 0 });
    });

    it("rejects bad capabilities and ids with INVALID_ARGUMENT", async () => {
      for (const bad of ["", "a b", "a.*", "a.>", "a..b", ".a"]) {
        const err = await bus()
          .publishJob(stepJob(bad))
          .catch((e: unknown) => e);
        expect(isMeshError(err) && err.code === Code.InvalidArgument, bad).toBe(true);
      }
      const err = await bus()
        .publishJob(stepJob("util.echo", { attemptId: "" }))
        .catch((e: unknown) => e);
      expect(isMeshError(err) && err.code === Code.InvalidArgument).toBe(true);
      const e2 = await bus()
        .subscribeGoalEvents("acme", "g.1")
        .catch((e: unknown) => e);
      expect(isMeshError(e2) && e2.code === Code.InvalidArgument).toBe(true);
    });
  });
}
