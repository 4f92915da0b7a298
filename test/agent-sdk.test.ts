/**
 * The agent SDK against both buses: results reported, schema-invalid input
 * failing terminally, handler errors reported at once with their code, attempt
 * fencing (a job past its attempt's deadline never runs), results too large for
 * the bus, timeouts, cancellation and draining.
 */
import { create, toJson } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import {
  CancelSignalSchema,
  type StepResult,
  StepResultStatus,
} from "../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { createInProcessBus } from "../lib/bus/in-process-bus.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import { sleep, stepJob, waitFor } from "../lib/bus/job-bus.contract.js";
import type { JobBus, Subscription } from "../lib/bus/job-bus.js";
import { Code, isMeshError } from "../lib/errors/mesh-error.js";
import { needNats, runId } from "../lib/testing/infra.js";
import { agentCard, defineAgent, nonRetryable, type RunningAgent, runAgent } from "../sdk/index.js";

const nats = await needNats();
const busOptions = { ackWaitMs: 1_000, maxDeliver: 3 };

const failing = defineAgent({
  name: "failing",
  version: "0.0.1",
  skills: {
    "test.refuse": {
      description: "Always refuses.",
      handler: () => {
        throw nonRetryable("not today", { code: "REFUSED", details: { why: "test" } });
      },
    },
    "test.bad-output": {
      description: "Returns something its schema forbids.",
      outputSchema: { type: "object", required: ["ok"] },
      handler: () => ({ nope: true }),
    },
    "test.count": {
      description: "Counts its runs per attempt.",
      handler: (_input: unknown, ctx) => {
        runs.set(ctx.attemptId, (runs.get(ctx.attemptId) ?? 0) + 1);
        return { key: ctx.idempotencyKey };
      },
    },
    "test.big": {
      description: "Returns more than the bus carries.",
      handler: (_input: unknown, ctx) => {
        runs.set(ctx.attemptId, (runs.get(ctx.attemptId) ?? 0) + 1);
        return { text: "x".repeat(2 * 1024 * 1024) };
      },
    },
  },
});
/** Handler runs per attempt id of the `failing` agent's counting skills. */
const runs = new Map<string, number>();

interface Harness {
  bus: JobBus;
  results: StepResult[];
  agent: RunningAgent;
  sub: Subscription;
  cleanup(): Promise<void>;
}

async function harness(bus: JobBus, cleanupBus: () => Promise<void>): Promise<Harness> {
  const results: StepResult[] = [];
  const sub = await bus.consumeResults({
    concurrency: 16,
    handler: (d) => {
      results.push(d.data);
    },
  });
  const agent = await runAgent(utilAgent, {
    bus,
    concurrency: 4,
    handleSignals: false,
    drainGraceMs: 100,
    startedReportDelayMs: 0,
  });
  return {
    bus,
    results,
    agent,
    sub,
    async cleanup() {
      await agent.stop();
      await sub.stop({ graceMs: 0 });
      await cleanupBus();
    },
  };
}

const setups: Array<[string, (() => Promise<Harness>) | undefined]> = [
  [
    "in-process",
    async () => {
      const bus = createInProcessBus({ ...busOptions, prefix: "sdk" });
      return harness(bus, () => bus.close({ graceMs: 0 }));
    },
  ],
  [
    "jetstream",
    nats &&
      (async () => {
        const prefix = runId("tsdk");
        const bus = await createJetStreamBus({ ...busOptions, prefix, servers: nats.url });
        return harness(bus, async () => {
          await bus.close({ graceMs: 0 });
          const nc = await connectNats(nats.url);
          const jsm = await jetstreamManager(nc);
          for (const s of Object.values(busNames(prefix).streams)) {
            await jsm.streams.delete(s).catch(() => false);
          }
          await nc.close();
        });
      }),
  ],
];

for (const [name, setup] of setups) {
  describe.skipIf(!setup)(`agent SDK on the ${name} bus`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await setup!();
    });
    afterAll(async () => {
      await h?.cleanup();
    });
    const of = (attemptId: string) => h.results.filter((r) => r.attemptId === attemptId);
    const final = (attemptId: string) =>
      of(attemptId).find((r) => r.status !== StepResultStatus.STARTED);

    it("reports STARTED then SUCCEEDED with the handler's output", async () => {
      const job = stepJob("util.echo", { input: { hello: "world", n: 2 } });
      await h.bus.publishJob(job);
      await waitFor(() => final(job.attemptId) !== undefined);
      const [started, done] = of(job.attemptId);
      expect(started?.status).toBe(StepResultStatus.STARTED);
      expect(done?.status).toBe(StepResultStatus.SUCCEEDED);
      expect(toJson(ValueSchema, done!.output!)).toEqual({ hello: "world", n: 2 });
      expect(done?.agentId).toBe(h.agent.agentId);
      expect(done?.goalId).toBe(job.goalId);
      expect(done?.finishedAt).toBeDefined();
    });

    it("fails a schema-invalid job terminally, once, with the violations", async () => {
      const job = stepJob("util.sleep", { input: { ms: "soon" } });
      await h.bus.publishJob(job);
      await waitFor(() => final(job.attemptId) !== undefined);
      const r = final(job.attemptId)!;
      expect(r.status).toBe(StepResultStatus.FAILED);
      expect(r.error?.code).toBe("INVALID_ARGUMENT");
      expect(r.error?.retryable).toBe(false);
      expect(JSON.stringify(r.error?.details)).toContain("/ms");
      await sleep(busOptions.ackWaitMs + 300);
      expect(of(job.attemptId)).toHaveLength(1); // no STARTED, no redelivery
    });

    it("reports a failing handler's error at once, retryable, and does not run it again", async () => {
      const job = stepJob("util.flaky", { input: { failTimes: 99, message: "disk on fire" } });
      await h.bus.publishJob(job);
      await waitFor(() => final(job.attemptId) !== undefined);
      const r = final(job.attemptId)!;
      expect(r.status).toBe(StepResultStatus.FAILED);
      expect(r.error).toMatchObject({ code: "FLAKY", retryable: true });
      expect(r.error?.message).toContain("disk on fire (try 1 of 99 failing)");
      // The executor's retry policy makes the next attempt; the bus does not redeliver.
      await sleep(busOptions.ackWaitMs + 300);
      expect(of(job.attemptId).filter((x) => x.status !== StepResultStatus.STARTED)).toHaveLength(
        1,
      );
      expect(await h.bus.listDeadLetters({ capability: "util.flaky" })).toEqual([]);
    });

    it("never starts a job at or past its attempt's deadline: the handler does not run", async () => {
      const other = await runAgent(failing, { bus: h.bus, handleSignals: false });
      const late = stepJob("test.count", { attemptDeadline: timestampFromMs(Date.now() - 1) });
      const onTime = stepJob("test.count", {
        attemptDeadline: timestampFromMs(Date.now() + 60_000),
      });
      await h.bus.publishJob(late);
      await h.bus.publishJob(onTime);
      await waitFor(
        () => final(late.attemptId) !== undefined && final(onTime.attemptId) !== undefined,
      );
      expect(final(late.attemptId)!.error).toMatchObject({
        code: "DEADLINE_EXCEEDED",
        retryable: true,
      });
      expect(final(late.attemptId)!.error?.message).toMatch(/reached its deadline .* not run/);
      expect(of(late.attemptId).some((r) => r.status === StepResultStatus.STARTED)).toBe(false);
      expect(runs.get(late.attemptId)).toBeUndefined();
      expect(runs.get(onTime.attemptId)).toBe(1);
      expect(toJson(ValueSchema, final(onTime.attemptId)!.output!)).toEqual({
        key: `${onTime.goalId}/${onTime.stepId}/0`,
      });
      await sleep(busOptions.ackWaitMs + 300);
      expect(of(late.attemptId)).toHaveLength(1); // terminated: never delivered again
      await other.stop();
    });

    it("fails a result too large for the bus as RESOURCE_EXHAUSTED naming its size, once", async () => {
      const other = await runAgent(failing, { bus: h.bus, handleSignals: false });
      const job = stepJob("test.big");
      await h.bus.publishJob(job);
      await waitFor(() => final(job.attemptId) !== undefined);
      const r = final(job.attemptId)!;
      expect(r.status).toBe(StepResultStatus.FAILED);
      expect(r.error).toMatchObject({ code: "RESOURCE_EXHAUSTED", retryable: false });
      expect(r.error?.message).toMatch(
        /result is too large: .* of \d{7} bytes .* max payload of \d+ bytes/,
      );
      await sleep(busOptions.ackWaitMs + 300);
      expect(runs.get(job.attemptId)).toBe(1);
      await other.stop();
    });

    it("fails a step that runs past its timeout as DEADLINE_EXCEEDED (retryable)", async () => {
      const job = stepJob("util.sleep", { input: { ms: 10_000 }, timeout: durationFromMs(150) });
      await h.bus.publishJob(job);
      await waitFor(() => final(job.attemptId) !== undefined);
      const r = final(job.attemptId)!;
      expect(r.status).toBe(StepResultStatus.FAILED);
      expect(r.error).toMatchObject({ code: "DEADLINE_EXCEEDED", retryable: true });
    });

    it("cancels a running step when its goal is cancelled", async () => {
      const goalId = runId("g");
      const job = stepJob("util.sleep", { goalId, input: { ms: 10_000 } });
      await h.bus.publishJob(job);
      await waitFor(() => of(job.attemptId).length === 1); // STARTED
      await h.bus.publishCancel(create(CancelSignalSchema, { goalId, reason: "user" }));
      await waitFor(() => final(job.attemptId) !== undefined);
      expect(final(job.attemptId)!.status).toBe(StepResultStatus.CANCELLED);
    });

    it("a step-level cancel stops that attempt only: the step's next attempt still runs", async () => {
      const goalId = runId("g");
      const first = stepJob("util.sleep", { goalId, input: { ms: 10_000 } });
      await h.bus.publishJob(first);
      await waitFor(() => of(first.attemptId).length === 1); // STARTED
      // What the executor sends when an attempt times out.
      await h.bus.publishCancel(
        create(CancelSignalSchema, { goalId, stepId: first.stepId, reason: "attempt timed out" }),
      );
      await waitFor(() => final(first.attemptId) !== undefined);
      expect(final(first.attemptId)!.status).toBe(StepResultStatus.CANCELLED);
      const retry = stepJob("util.echo", { goalId, stepId: first.stepId, input: { again: true } });
      await h.bus.publishJob(retry);
      await waitFor(() => final(retry.attemptId) !== undefined);
      expect(final(retry.attemptId)!.status).toBe(StepResultStatus.SUCCEEDED);
    });

    it("fails terminally on nonRetryable errors and on output that breaks the schema", async () => {
      const other = await runAgent(failing, { bus: h.bus, handleSignals: false });
      const a = stepJob("test.refuse");
      const b = stepJob("test.bad-output");
      await h.bus.publishJob(a);
      await h.bus.publishJob(b);
      await waitFor(() => final(a.attemptId) !== undefined && final(b.attemptId) !== undefined);
      expect(final(a.attemptId)!.error).toMatchObject({ code: "REFUSED", retryable: false });
      expect(final(b.attemptId)!.error).toMatchObject({ code: "INTERNAL", retryable: false });
      await other.stop();
    });

    it("drains: a step still running after the grace period goes to another agent", async () => {
      const first = await runAgent(utilAgent, {
        bus: h.bus,
        handleSignals: false,
        drainGraceMs: 100,
      });
      // Two agents compete for the job; whichever starts it is stopped mid-step.
      const job = stepJob("util.sleep", { input: { ms: 1_500 } });
      await h.bus.publishJob(job);
      await waitFor(() => of(job.attemptId).length >= 1);
      const starter = of(job.attemptId)[0]!.agentId;
      const t0 = Date.now();
      if (starter === first.agentId) await first.stop("test");
      else await h.agent.stop("test").then(() => undefined);
      await waitFor(() => final(job.attemptId) !== undefined, 10_000);
      expect(final(job.attemptId)!.status).toBe(StepResultStatus.SUCCEEDED);
      expect(final(job.attemptId)!.agentId).not.toBe(starter);
      // Handed back at once, not after the ack wait: 100 ms grace + the 1.5 s step.
      expect(Date.now() - t0).toBeLessThan(1_500 + busOptions.ackWaitMs);
      if (starter !== first.agentId) {
        // Restore the harness's agent for the tests after this one.
        h.agent = await runAgent(utilAgent, {
          bus: h.bus,
          handleSignals: false,
          drainGraceMs: 100,
        });
      }
      await first.stop();
    });
  });
}

describe("defineAgent", () => {
  it("builds the registry card from the definition", () => {
    const card = agentCard(utilAgent);
    expect(card.name).toBe("util");
    expect(card.skills.map((s) => s.capability)).toEqual(["util.echo", "util.sleep", "util.flaky"]);
    expect(card.skills[1]!.inputSchema).toMatchObject({ required: ["ms"] });
  });

  it("rejects bad names, empty agents and invalid schemas", async () => {
    const bad = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return isMeshError(e) && e.code === Code.InvalidArgument;
      }
      return false;
    };
    expect(bad(() => defineAgent({ name: "Bad Name", version: "1", skills: {} }))).toBe(true);
    expect(bad(() => defineAgent({ name: "empty", version: "1", skills: {} }))).toBe(true);
    expect(
      bad(() =>
        defineAgent({
          name: "x",
          version: "1",
          skills: { "a.*": { description: "", handler: () => 1 } },
        }),
      ),
    ).toBe(true);
    const broken = defineAgent({
      name: "broken",
      version: "1",
      skills: { "a.b": { description: "", inputSchema: { type: "nope" }, handler: () => 1 } },
    });
    const err = await runAgent(broken, { bus: createInProcessBus(), handleSignals: false }).catch(
      (e: unknown) => e,
    );
    expect(isMeshError(err) && err.code === Code.InvalidArgument).toBe(true);
  });
});
