/**
 * A job's one timer: the STARTED report when the job outlives the report delay,
 * then the step's time limit, counted from the job's start; and handlers that
 * return a value, a promise or throw at once are all reported.
 */
import { toJson } from "@bufbuild/protobuf";
import { durationFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StepResult, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import { createInProcessBus } from "../../lib/bus/in-process-bus.js";
import { stepJob, waitFor } from "../../lib/bus/job-bus.contract.js";
import type { JobBus, Subscription } from "../../lib/bus/job-bus.js";
import { defineAgent } from "./define-agent.js";
import { type RunningAgent, runAgent } from "./run-agent.js";

const agent = defineAgent({
  name: "timed",
  version: "0.0.1",
  skills: {
    "test.sleep": {
      description: "Sleeps for input.ms.",
      handler: async (input: { ms: number }) => {
        await new Promise((r) => setTimeout(r, input.ms));
        return { slept: input.ms };
      },
    },
    "test.sync": { description: "Answers at once.", handler: () => ({ now: true }) },
    "test.throw": {
      description: "Throws at once.",
      handler: () => {
        throw new Error("at once");
      },
    },
  },
});

const startedDelayMs = 60;

describe("runAgent: STARTED and the time limit on one timer", () => {
  let bus: JobBus;
  let sub: Subscription;
  let running: RunningAgent;
  const results: (StepResult & { at: number })[] = [];
  const of = (attemptId: string) => results.filter((r) => r.attemptId === attemptId);
  const statuses = (attemptId: string) => of(attemptId).map((r) => StepResultStatus[r.status]);

  beforeAll(async () => {
    bus = createInProcessBus({ prefix: "timers" });
    sub = await bus.consumeResults({
      concurrency: 16,
      handler: (d) => {
        results.push(Object.assign(d.data, { at: Date.now() }));
      },
    });
    running = await runAgent(agent, {
      bus,
      handleSignals: false,
      drainGraceMs: 100,
      startedReportDelayMs: startedDelayMs,
    });
  });
  afterAll(async () => {
    await running?.stop();
    await sub?.stop({ graceMs: 0 });
    await bus?.close({ graceMs: 0 });
  });

  it("a job quicker than the delay reports no STARTED", async () => {
    const job = stepJob("test.sleep", { input: { ms: 5 } });
    await bus.publishJob(job);
    await waitFor(() => of(job.attemptId).length === 1);
    await new Promise((r) => setTimeout(r, startedDelayMs * 2));
    expect(statuses(job.attemptId)).toEqual(["SUCCEEDED"]);
  });

  it("a job that outlives the delay reports STARTED, then its result", async () => {
    const job = stepJob("test.sleep", { input: { ms: startedDelayMs * 3 } });
    await bus.publishJob(job);
    await waitFor(() => of(job.attemptId).length === 2);
    expect(statuses(job.attemptId)).toEqual(["STARTED", "SUCCEEDED"]);
    expect(toJson(ValueSchema, of(job.attemptId)[1]!.output!)).toEqual({
      slept: startedDelayMs * 3,
    });
  });

  it("the time limit still ends a job after its STARTED, counted from the start", async () => {
    const limitMs = 300;
    const job = stepJob("test.sleep", {
      input: { ms: 5_000 },
      timeout: durationFromMs(limitMs),
    });
    const t0 = Date.now();
    await bus.publishJob(job);
    await waitFor(() => of(job.attemptId).length === 2, 3_000);
    expect(statuses(job.attemptId)).toEqual(["STARTED", "FAILED"]);
    const [, failed] = of(job.attemptId);
    expect(failed!.error?.code).toBe("DEADLINE_EXCEEDED");
    expect(failed!.at - t0).toBeGreaterThanOrEqual(limitMs - 5);
    expect(failed!.at - t0).toBeLessThan(limitMs + 500);
  });

  it("a limit shorter than the delay ends the job with no STARTED", async () => {
    const job = stepJob("test.sleep", { input: { ms: 5_000 }, timeout: durationFromMs(30) });
    await bus.publishJob(job);
    await waitFor(() => of(job.attemptId).length === 1, 3_000);
    await new Promise((r) => setTimeout(r, startedDelayMs * 2));
    expect(statuses(job.attemptId)).toEqual(["FAILED"]);
    expect(of(job.attemptId)[0]!.error?.code).toBe("DEADLINE_EXCEEDED");
  });

  it("a handler that answers or throws synchronously is reported like any other", async () => {
    const ok = stepJob("test.sync");
    const thrown = stepJob("test.throw");
    await bus.publishJob(ok);
    await bus.publishJob(thrown);
    await waitFor(() => of(ok.attemptId).length === 1 && of(thrown.attemptId).length === 1);
    expect(toJson(ValueSchema, of(ok.attemptId)[0]!.output!)).toEqual({ now: true });
    expect(statuses(thrown.attemptId)).toEqual(["FAILED"]);
    expect(of(thrown.attemptId)[0]!.error?.message).toContain("at once");
  });
});
