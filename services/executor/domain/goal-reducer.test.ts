// biome-ignore-all lint/suspicious/noTemplateCurlyInString: step templates
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, timestampMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GoalStatus, RetryPolicySchema, StepStatus } from "../../../gen/agentmesh/v1/common_pb.js";
import {
  type StepJob,
  StepResultSchema,
  StepResultStatus,
} from "../../../gen/agentmesh/v1/jobs_pb.js";
import {
  type Plan,
  PlanSchema,
  StepSchema,
  SubGoalSchema,
} from "../../../gen/agentmesh/v1/planner_pb.js";
import { agentLostCode, attemptFenceGraceMs } from "../../../lib/bus/attempt-fence.js";
import { arbitrate, canonicalJson } from "./arbitrate.js";
import {
  attemptRateLimited,
  type GoalCommand,
  type GoalInput,
  initGoal,
  maxUnchargedAttempts,
  notTakenCode,
  type ReduceOptions,
  rateLimitedCode,
  recoverGoal,
  reduceGoal,
  unchargedAttempts,
} from "./goal-reducer.js";
import { type GoalState, toStepStates } from "./goal-state.js";
import { backoffMs, retrySpec } from "./retry.js";

interface StepInit {
  id: string;
  capability?: string;
  dependsOn?: string[];
  input?: Record<string, JsonValue>;
  replicas?: number;
  maxAttempts?: number;
  nonRetryable?: string[];
  timeoutMs?: number;
  subGoal?: string;
}

function plan(steps: StepInit[], outputStep = ""): Plan {
  return create(PlanSchema, {
    planId: "p1",
    goalId: "g1",
    tenantId: "t1",
    goalKind: "demo",
    strategy: "s",
    outputStep,
    steps: steps.map((s) =>
      create(StepSchema, {
        stepId: s.id,
        capability: s.subGoal ? "" : (s.capability ?? "util.echo"),
        dependsOn: s.dependsOn ?? [],
        input: s.input ?? {},
        replicas: s.replicas ?? 1,
        ...(s.timeoutMs ? { timeout: durationFromMs(s.timeoutMs) } : {}),
        ...(s.subGoal
          ? { subGoal: create(SubGoalSchema, { kind: s.subGoal, input: s.input }) }
          : {}),
        retry: create(RetryPolicySchema, {
          maxAttempts: s.maxAttempts ?? 0,
          nonRetryableCodes: s.nonRetryable ?? [],
        }),
      }),
    ),
  });
}

/** Drives a goal through inputs, collecting every command. */
class Driver {
  state: GoalState;
  commands: GoalCommand[] = [];
  constructor(
    input: Record<string, JsonValue> = {},
    private readonly options: ReduceOptions = {},
  ) {
    const t = initGoal({
      goalId: "g1",
      tenantId: "t1",
      kind: "demo",
      input: input as never,
      createdAtMs: 0,
      deadlineMs: 600_000,
    });
    this.state = t.state;
    this.commands.push(...t.commands);
  }
  send(input: GoalInput): GoalCommand[] {
    const t = reduceGoal(this.state, input, this.options);
    this.state = t.state;
    this.commands.push(...t.commands);
    return t.commands;
  }
  jobs(): StepJob[] {
    return this.commands.flatMap((c) => (c.type === "dispatchJob" ? [c.job] : []));
  }
  events(kind?: string) {
    return this.commands.flatMap((c) =>
      c.type === "emitEvent" && (kind === undefined || c.event.kind.case === kind) ? [c.event] : [],
    );
  }
  finishes() {
    return this.commands.filter((c) => c.type === "finishGoal");
  }
}

function result(
  job: StepJob,
  status: StepResultStatus,
  extra: { output?: JsonValue; agentId?: string; code?: string; retryable?: boolean } = {},
) {
  return create(StepResultSchema, {
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    attempt: job.attempt,
    replica: job.replica,
    agentId: extra.agentId ?? `agent-${job.replica}`,
    status,
    ...(extra.output !== undefined ? { output: fromJson(ValueSchema, extra.output) } : {}),
    ...(status === StepResultStatus.FAILED
      ? {
          error: {
            code: extra.code ?? "TOOL_ERROR",
            message: "boom",
            retryable: extra.retryable ?? true,
          },
        }
      : {}),
  });
}

const ok = (job: StepJob, output: JsonValue, at = 1, agentId?: string): GoalInput => ({
  type: "result",
  result: result(job, StepResultStatus.SUCCEEDED, { output, ...(agentId ? { agentId } : {}) }),
  at,
});
/** The result the executor applies for an attempt a rate limit held back until `turn`. */
const limited = (job: StepJob, at: number, turn: number): GoalInput => ({
  type: "result",
  result: create(StepResultSchema, {
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    status: StepResultStatus.FAILED,
    error: {
      code: rateLimitedCode,
      message: "over",
      retryable: true,
      details: { notBeforeMs: turn },
    },
  }),
  at,
});
const fail = (job: StepJob, at = 1, code = "TOOL_ERROR", retryable = true): GoalInput => ({
  type: "result",
  result: result(job, StepResultStatus.FAILED, { code, retryable }),
  at,
});

describe("goal reducer", () => {
  it("submits, plans, runs parallel branches together, then the join, and finishes once", () => {
    const d = new Driver({ text: "hi" });
    expect(d.events("submitted")).toHaveLength(1);
    expect(d.commands).toContainEqual({ type: "scheduleDeadline", at: 600_000 });
    d.send({
      type: "planned",
      at: 1,
      plan: plan(
        [
          { id: "a", input: { t: "${input.text}" } },
          { id: "b" },
          {
            id: "merge",
            dependsOn: ["a", "b"],
            input: { x: "${steps.a.output.v}", y: "${steps.b.output}" },
          },
        ],
        "merge",
      ),
    });
    expect(d.state.status).toBe(GoalStatus.RUNNING);
    const [a, b] = d.jobs();
    expect(d.jobs().map((j) => j.attemptId)).toEqual(["g1:a:1:0", "g1:b:1:0"]);
    expect(a!.input).toEqual({ t: "hi" });
    d.send({ type: "result", result: result(a!, StepResultStatus.STARTED), at: 2 });
    expect(d.state.steps.a!.status).toBe(StepStatus.RUNNING);
    d.send(ok(a!, { v: 1 }, 3));
    expect(d.jobs()).toHaveLength(2);
    d.send(ok(b!, "bee", 4));
    const merge = d.jobs()[2]!;
    expect(merge.attemptId).toBe("g1:merge:1:0");
    expect(merge.input).toEqual({ x: 1, y: "bee" });
    d.send(ok(merge, { done: true }, 5));
    expect(d.state.status).toBe(GoalStatus.SUCCEEDED);
    expect(d.state.output).toEqual({ done: true });
    expect(d.finishes()).toEqual([
      { type: "finishGoal", status: GoalStatus.SUCCEEDED, output: { done: true } },
    ]);
    const seq = d.events().map((e) => Number(e.sequence));
    expect(seq).toEqual(seq.map((_, i) => i + 1));
    // Anything after the end changes nothing.
    const before = d.state;
    expect(d.send(ok(merge, { done: false }, 6))).toEqual([]);
    expect(d.send({ type: "cancelRequested", reason: "late", at: 7 })).toEqual([]);
    expect(d.state).toBe(before);
  });

  it("ignores duplicate and stale results by attempt id", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 1, plan: plan([{ id: "a" }, { id: "b", dependsOn: ["a"] }]) });
    const a = d.jobs()[0]!;
    d.send(ok(a, 1, 2));
    const state = d.state;
    expect(d.send(ok(a, 2, 3))).toEqual([]);
    expect(d.send(fail(a, 3))).toEqual([]);
    expect(d.state).toBe(state);
    expect(d.state.steps.a!.output).toBe(1);
    const unknown = { ...a, attemptId: "g1:a:9:0" } as StepJob;
    expect(d.send(ok(unknown, 3, 4))).toEqual([]);
  });

  it("retries with exponential backoff, then succeeds", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "f", maxAttempts: 3 }]) });
    d.send(fail(d.jobs()[0]!, 10));
    expect(d.state.steps.f!.status).toBe(StepStatus.RETRY_WAIT);
    expect(d.commands).toContainEqual({ type: "scheduleRetry", stepId: "f", attempt: 2, at: 210 });
    // A retry timer for the wrong attempt, or a result for the failed attempt, changes nothing.
    expect(d.send({ type: "retryDue", stepId: "f", attempt: 3, at: 210 })).toEqual([]);
    d.send({ type: "retryDue", stepId: "f", attempt: 2, at: 210 });
    const second = d.jobs()[1]!;
    expect(second.attemptId).toBe("g1:f:2:0");
    d.send(fail(second, 300));
    expect(d.commands).toContainEqual({ type: "scheduleRetry", stepId: "f", attempt: 3, at: 700 });
    d.send({ type: "retryDue", stepId: "f", attempt: 3, at: 700 });
    d.send(ok(d.jobs()[2]!, "fine", 800));
    expect(d.state.status).toBe(GoalStatus.SUCCEEDED);
    expect(
      d.events("stepFailed").map((e) => (e.kind.value as { willRetry: boolean }).willRetry),
    ).toEqual([true, true]);
    expect(toStepStates(d.state)[0]!.attempts).toBe(3);
  });

  it("fails the goal with the step's error after the last attempt or at once when non-retryable", () => {
    const d = new Driver();
    d.send({
      type: "planned",
      at: 0,
      plan: plan([{ id: "a", maxAttempts: 1 }, { id: "b" }, { id: "c", dependsOn: ["a"] }]),
    });
    d.send(fail(d.jobs()[0]!, 5, "TOOL_ERROR"));
    expect(d.state.status).toBe(GoalStatus.FAILED);
    expect(d.state.error?.code).toBe("TOOL_ERROR");
    expect(d.state.error?.message).toMatch(/step "a"/);
    expect(d.state.steps.b!.status).toBe(StepStatus.CANCELLED);
    expect(d.state.steps.c!.status).toBe(StepStatus.CANCELLED);
    expect(d.commands.some((c) => c.type === "publishCancel" && c.signal.stepId === "")).toBe(true);
    expect(d.finishes()).toHaveLength(1);

    const e = new Driver();
    e.send({ type: "planned", at: 0, plan: plan([{ id: "a", nonRetryable: ["QUOTA"] }]) });
    e.send(fail(e.jobs()[0]!, 5, "QUOTA", true));
    expect(e.state.status).toBe(GoalStatus.FAILED);
    const f = new Driver();
    f.send({ type: "planned", at: 0, plan: plan([{ id: "a" }]) });
    f.send(fail(f.jobs()[0]!, 5, "INVALID_ARGUMENT", false));
    expect(f.state.status).toBe(GoalStatus.FAILED);
    expect(f.jobs()).toHaveLength(1);
  });

  it("times out attempts, ignoring early timers, and retries them", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000 }]) });
    const job = d.jobs()[0]!;
    // The executor gives up a grace after the deadline the job carries.
    expect(timestampMs(job.attemptDeadline!)).toBe(1000);
    expect(d.commands).toContainEqual({
      type: "scheduleTimeout",
      attemptId: job.attemptId,
      at: 1000 + attemptFenceGraceMs,
    });
    expect(
      d.send({ type: "attemptTimedOut", attemptId: job.attemptId, at: 999 + attemptFenceGraceMs }),
    ).toEqual([]);
    d.send({ type: "attemptTimedOut", attemptId: job.attemptId, at: 1000 + attemptFenceGraceMs });
    expect(d.state.steps.a!.status).toBe(StepStatus.RETRY_WAIT);
    expect(d.state.steps.a!.error?.code).toBe("TIMEOUT");
    expect(d.commands.some((c) => c.type === "publishCancel" && c.signal.stepId === "a")).toBe(
      true,
    );
    // The late answer of the timed-out attempt is ignored.
    expect(d.send(ok(job, "late", 1001))).toEqual([]);
  });

  it("does not charge a step for attempts no agent could take, up to a bound", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000, maxAttempts: 1 }]) });
    let at = 1000 + attemptFenceGraceMs;
    for (let n = 1; n <= maxUnchargedAttempts; n++) {
      const job = d.jobs().at(-1)!;
      expect(job.attempt).toBe(n);
      d.send({ type: "attemptTimedOut", attemptId: job.attemptId, at, untaken: true });
      // Not the step's failure: with one attempt allowed, it still gets its attempt.
      expect(d.state.steps.a!.status).toBe(StepStatus.RETRY_WAIT);
      expect(d.state.steps.a!.error?.code).toBe(notTakenCode);
      expect(unchargedAttempts(d.state.steps.a!)).toBe(n);
      at = d.state.steps.a!.retryAtMs!;
      d.send({ type: "retryDue", stepId: "a", attempt: n + 1, at });
      at += 1000 + attemptFenceGraceMs;
    }
    // Past the bound, a job nobody takes counts again, and the step ends.
    const last = d.jobs().at(-1)!;
    d.send({ type: "attemptTimedOut", attemptId: last.attemptId, at, untaken: true });
    expect(d.state.steps.a!.status).toBe(StepStatus.FAILED);

    // An agent refusing the job (past its deadline) after the executor held the timeout:
    // not taken either. Before the timeout, the refusal is the attempt's failure.
    const r = new Driver();
    r.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000, maxAttempts: 1 }]) });
    const held = r.jobs()[0]!;
    r.send(fail(held, 1000 + attemptFenceGraceMs + 5_000, "DEADLINE_EXCEEDED"));
    expect(r.state.steps.a!.status).toBe(StepStatus.RETRY_WAIT);
    expect(r.state.steps.a!.error?.code).toBe(notTakenCode);
    const q = new Driver();
    q.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000, maxAttempts: 1 }]) });
    q.send(fail(q.jobs()[0]!, 1000, "DEADLINE_EXCEEDED"));
    expect(q.state.steps.a!.status).toBe(StepStatus.FAILED);

    // A job an agent could have taken (agents were live) costs its attempt as before.
    const e = new Driver();
    e.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000, maxAttempts: 1 }]) });
    const job = e.jobs()[0]!;
    e.send({ type: "attemptTimedOut", attemptId: job.attemptId, at: 1000 + attemptFenceGraceMs });
    expect(e.state.steps.a!.status).toBe(StepStatus.FAILED);
    expect(e.state.steps.a!.error?.code).toBe("TIMEOUT");
  });

  it("delays a step a rate limit held back to its turn, without charging its retries", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000, maxAttempts: 1 }]) });
    // Held back twice (two turns in a row), each retried exactly at its turn, no backoff.
    for (const [n, turn] of [
      [1, 750],
      [2, 2_000],
    ] as const) {
      const job = d.jobs().at(-1)!;
      expect(job.attempt).toBe(n);
      d.send(limited(job, turn - 500, turn));
      expect(d.state.steps.a!.status).toBe(StepStatus.RETRY_WAIT);
      expect(d.state.steps.a!.retryAtMs).toBe(turn);
      expect(attemptRateLimited(d.state.steps.a!, n)).toBe(true);
      expect(unchargedAttempts(d.state.steps.a!)).toBe(n);
      d.send({ type: "retryDue", stepId: "a", attempt: n + 1, at: turn });
    }
    // With one attempt allowed, the attempt at its turn still runs, and its success ends the goal.
    const job = d.jobs().at(-1)!;
    expect(job.attempt).toBe(3);
    expect(attemptRateLimited(d.state.steps.a!, 3)).toBe(false);
    d.send(ok(job, { done: true }, 2_100));
    expect(d.state.status).toBe(GoalStatus.SUCCEEDED);
    expect(d.events("stepFailed").map((e) => e.kind.value)).toMatchObject([
      { error: { code: rateLimitedCode }, willRetry: true },
      { error: { code: rateLimitedCode }, willRetry: true },
    ]);
    // A turn already passed when the result is applied: the next attempt starts at once.
    const late = new Driver();
    late.send({ type: "planned", at: 0, plan: plan([{ id: "a", timeoutMs: 1000 }]) });
    late.send(limited(late.jobs()[0]!, 900, 400));
    expect(late.state.steps.a!.retryAtMs).toBe(900);
  });

  it("fences attempts: the next one is dispatched only after the previous one's deadline", () => {
    // Whatever happens to attempt n, attempt n+1 goes out either after attempt n's agent
    // reported its end or after its deadline (plus the grace): never while it may still run.
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            kind: fc.constantFrom("timeout", "handlerError", "lost", "refusedLate"),
            after: fc.integer({ min: 0, max: 3_000 }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (fates) => {
          const d = new Driver();
          d.send({
            type: "planned",
            at: 0,
            plan: plan([{ id: "a", timeoutMs: 2_000, maxAttempts: fates.length + 1 }]),
          });
          let at = 0;
          for (const fate of fates) {
            const job = d.jobs().at(-1)!;
            const deadline = timestampMs(job.attemptDeadline!);
            const dispatched = timestampMs(job.dispatchedAt!);
            expect(deadline).toBe(dispatched + 2_000);
            let endedByRunner = false;
            switch (fate.kind) {
              case "timeout":
                at = deadline + attemptFenceGraceMs;
                d.send({ type: "attemptTimedOut", attemptId: job.attemptId, at });
                break;
              case "handlerError":
                // The agent that ran it says it is over: no need to wait.
                at = dispatched + Math.min(fate.after, 1_999);
                d.send(fail(job, at, "FLAKY"));
                endedByRunner = true;
                break;
              case "lost":
                // Another agent refused the redelivery: the first may be stalled, not dead.
                at = dispatched + Math.min(fate.after, 1_999);
                d.send(fail(job, at, agentLostCode));
                break;
              case "refusedLate":
                at = deadline + Math.min(fate.after, attemptFenceGraceMs - 1);
                d.send(fail(job, at, "DEADLINE_EXCEEDED"));
                break;
            }
            const step = d.state.steps.a!;
            expect(step.status).toBe(StepStatus.RETRY_WAIT);
            if (!endedByRunner) expect(step.retryAtMs!).toBeGreaterThanOrEqual(deadline);
            if (fate.kind === "lost") {
              expect(step.retryAtMs!).toBeGreaterThanOrEqual(deadline + attemptFenceGraceMs);
            }
            const before = d.jobs().length;
            // An early retry timer changes nothing; the due one dispatches the next attempt.
            d.send({
              type: "retryDue",
              stepId: "a",
              attempt: step.attempt + 1,
              at: step.retryAtMs!,
            });
            expect(d.jobs()).toHaveLength(before + 1);
            at = step.retryAtMs!;
            // The superseded attempt's late answers are ignored.
            expect(d.send(ok(job, "late", at + 1))).toEqual([]);
          }
          expect(d.state.steps.a!.error?.code).toBeDefined();
        },
      ),
      { numRuns: 200 },
    );
  });

  it("ends a step whose handler keeps failing with the handler's error, not a timeout", () => {
    const d = new Driver();
    d.send({
      type: "planned",
      at: 0,
      plan: plan([{ id: "a", timeoutMs: 10_000, maxAttempts: 4 }]),
    });
    let at = 0;
    for (let attempt = 1; attempt <= 4; attempt++) {
      const job = d.jobs().at(-1)!;
      at += 5;
      d.send(fail(job, at, "FLAKY"));
      const step = d.state.steps.a!;
      if (attempt < 4) {
        at = step.retryAtMs!;
        d.send({ type: "retryDue", stepId: "a", attempt: attempt + 1, at });
      }
    }
    expect(d.state.status).toBe(GoalStatus.FAILED);
    expect(d.state.error?.code).toBe("FLAKY");
    expect(d.jobs()).toHaveLength(4);
    expect(at).toBeLessThan(10_000); // backoffs only, far inside attempts × timeout
  });

  it("cancels: pending steps never run, running ones are signalled", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "a" }, { id: "b", dependsOn: ["a"] }]) });
    d.send({ type: "cancelRequested", reason: "user asked", at: 5 });
    expect(d.state.status).toBe(GoalStatus.CANCELLED);
    expect(d.state.error).toEqual({ code: "CANCELLED", message: "user asked", retryable: false });
    expect(d.state.steps.a!.status).toBe(StepStatus.CANCELLED);
    expect(d.state.steps.b!.status).toBe(StepStatus.CANCELLED);
    expect(d.jobs()).toHaveLength(1);
    expect(d.commands.filter((c) => c.type === "publishCancel")).toHaveLength(1);
    expect(d.finishes()).toEqual([
      { type: "finishGoal", status: GoalStatus.CANCELLED, error: d.state.error },
    ]);
    // Cancelling before planning finishes at once; a late plan is ignored.
    const e = new Driver();
    e.send({ type: "cancelRequested", reason: "", at: 1 });
    expect(e.state.status).toBe(GoalStatus.CANCELLED);
    expect(e.send({ type: "planned", at: 2, plan: plan([{ id: "a" }]) })).toEqual([]);
  });

  it("fails at the deadline, not before", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "a" }]) });
    expect(d.send({ type: "deadlinePassed", at: 599_999 })).toEqual([]);
    d.send({ type: "deadlinePassed", at: 600_000 });
    expect(d.state.status).toBe(GoalStatus.FAILED);
    expect(d.state.error?.code).toBe("DEADLINE_EXCEEDED");
  });

  it("fails a step whose templates cannot be filled and a goal whose planning failed", () => {
    const d = new Driver();
    d.send({
      type: "planned",
      at: 0,
      plan: plan([
        { id: "a" },
        { id: "b", dependsOn: ["a"], input: { x: "v=${steps.a.output.nope}" } },
      ]),
    });
    d.send(ok(d.jobs()[0]!, {}, 1));
    expect(d.state.status).toBe(GoalStatus.FAILED);
    expect(d.state.error?.code).toBe("INVALID_ARGUMENT");
    const e = new Driver();
    e.send({
      type: "planFailed",
      at: 1,
      error: { code: "FAILED_PRECONDITION", message: "no agent", retryable: false },
    });
    expect(e.state.status).toBe(GoalStatus.FAILED);
    expect(e.finishes()).toHaveLength(1);
  });

  it("arbitrates replicas: majority, early decision, then reliability with disagreement", () => {
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "s", replicas: 3 }]) });
    const jobs = d.jobs();
    expect(jobs.map((j) => j.attemptId)).toEqual(["g1:s:1:0", "g1:s:1:1", "g1:s:1:2"]);
    d.send(ok(jobs[0]!, { a: 1, b: 2 }, 1));
    expect(d.state.steps.s!.status).toBe(StepStatus.DISPATCHED);
    d.send(ok(jobs[1]!, { b: 2, a: 1 }, 2)); // equal canonically: majority of 3
    expect(d.state.status).toBe(GoalStatus.SUCCEEDED);
    expect(d.state.steps.s!.agentIds).toEqual(["agent-0", "agent-1"]);
    expect(d.commands.some((c) => c.type === "publishCancel" && c.signal.stepId === "s")).toBe(
      true,
    );

    const reliability = (agent: string) =>
      ({ "agent-0": 0.2, "agent-1": 0.9, "agent-2": 0.5 })[agent] ?? 0;
    const e = new Driver({}, { reliability });
    e.send({ type: "planned", at: 0, plan: plan([{ id: "s", replicas: 3 }]) });
    const [x, y, z] = e.jobs();
    e.send(ok(x!, "one", 1));
    e.send(ok(y!, "two", 2));
    expect(e.state.status).toBe(GoalStatus.RUNNING);
    e.send(fail(z!, 3));
    expect(e.state.status).toBe(GoalStatus.SUCCEEDED);
    expect(e.state.output).toBe("two");
    const succeeded = e.events("stepSucceeded")[0]!.kind.value as {
      disagreement: boolean;
      agentIds: string[];
    };
    expect(succeeded.disagreement).toBe(true);
    expect(succeeded.agentIds).toEqual(["agent-1"]);
  });

  it("runs a sub-goal step as a child goal", () => {
    const d = new Driver({ text: "t" });
    d.send({
      type: "planned",
      at: 0,
      plan: plan(
        [
          { id: "sub", subGoal: "summarize", input: { text: "${input.text}" } },
          { id: "after", dependsOn: ["sub"], input: { s: "${steps.sub.output.summary}" } },
        ],
        "after",
      ),
    });
    const start = d.commands.find((c) => c.type === "startChildGoal");
    expect(start).toEqual({
      type: "startChildGoal",
      stepId: "sub",
      attempt: 1,
      idempotencyKey: "g1:sub:1",
      kind: "summarize",
      input: { text: "t" },
      deadlineMs: 600_000,
    });
    d.send({ type: "childGoalStarted", stepId: "sub", attempt: 1, childGoalId: "child-1", at: 1 });
    expect(toStepStates(d.state)[0]!.childGoalId).toBe("child-1");
    d.send({
      type: "childGoalFinished",
      stepId: "sub",
      attempt: 1,
      status: GoalStatus.SUCCEEDED,
      output: { summary: "short" },
      at: 2,
    });
    expect(d.jobs()[0]!.input).toEqual({ s: "short" });
    // A child that finished before its start was recorded: the step still names it.
    const early = new Driver({ text: "t" });
    early.send({ type: "planned", at: 0, plan: plan([{ id: "sub", subGoal: "summarize" }]) });
    early.send({
      type: "childGoalFinished",
      stepId: "sub",
      attempt: 1,
      childGoalId: "c1",
      status: GoalStatus.SUCCEEDED,
      output: {},
      at: 1,
    });
    expect(toStepStates(early.state)[0]).toMatchObject({
      status: StepStatus.SUCCEEDED,
      childGoalId: "c1",
    });
    // Cancel propagates to running children.
    const e = new Driver({ text: "t" });
    e.send({ type: "planned", at: 0, plan: plan([{ id: "sub", subGoal: "summarize" }]) });
    e.send({ type: "childGoalStarted", stepId: "sub", attempt: 1, childGoalId: "c9", at: 1 });
    e.send({ type: "cancelRequested", reason: "stop", at: 2 });
    expect(e.commands).toContainEqual({
      type: "cancelChildGoal",
      childGoalId: "c9",
      idempotencyKey: "g1:sub:1",
      reason: "stop",
    });
  });

  it("recovers after a crash: re-dispatches in-flight attempts under the same ids, never completed steps", () => {
    const d = new Driver();
    d.send({
      type: "planned",
      at: 0,
      plan: plan([{ id: "a" }, { id: "b" }, { id: "c", maxAttempts: 3 }]),
    });
    const [a, , c] = d.jobs();
    d.send(ok(a!, 1, 1));
    d.send(fail(c!, 2));
    const restored = JSON.parse(JSON.stringify(d.state)) as GoalState;
    const commands = recoverGoal(restored);
    const jobs = commands.flatMap((x) => (x.type === "dispatchJob" ? [x.job.attemptId] : []));
    expect(jobs).toEqual(["g1:b:1:0"]);
    expect(commands).toContainEqual({ type: "scheduleRetry", stepId: "c", attempt: 2, at: 202 });
    expect(commands).toContainEqual({ type: "scheduleDeadline", at: 600_000 });
  });

  it("computes backoff with defaults and caps", () => {
    const spec = retrySpec(undefined);
    expect(spec).toEqual({
      maxAttempts: 3,
      initialBackoffMs: 200,
      maxBackoffMs: 30_000,
      multiplier: 2,
      nonRetryableCodes: [],
    });
    expect([1, 2, 3, 10].map((n) => backoffMs(spec, n))).toEqual([200, 400, 800, 30_000]);
    expect(retrySpec(undefined, true).maxAttempts).toBe(1);
  });

  it("compares outputs canonically", () => {
    expect(canonicalJson({ b: [1, { d: 1, c: 2 }], a: null })).toBe(
      '{"a":null,"b":[1,{"c":2,"d":1}]}',
    );
    expect(arbitrate(3, [], () => 0)).toEqual({ kind: "waiting" });
    expect(
      arbitrate(
        2,
        [
          { replica: 0, state: "failed", agentId: "x" },
          { replica: 1, state: "failed", agentId: "y" },
        ],
        () => 0,
      ),
    ).toEqual({ kind: "failed" });
  });
});

/** Random plans: DAGs of 1–7 steps, 1–3 replicas, some first attempts failing. */
const scenario = fc.integer({ min: 1, max: 7 }).chain((n) =>
  fc.record({
    steps: fc.tuple(
      ...Array.from({ length: n }, (_, i) =>
        fc.record({
          deps: fc.subarray(
            Array.from({ length: i }, (_, j) => `s${j}`),
            { maxLength: Math.min(3, i) },
          ),
          replicas: fc.integer({ min: 1, max: 3 }),
          failFirst: fc.boolean(),
        }),
      ),
    ),
    choices: fc.array(fc.nat(), { minLength: 400, maxLength: 400 }),
    crashes: fc.array(fc.nat({ max: 200 }), { maxLength: 3 }),
  }),
);

describe("goal reducer (property)", () => {
  it("for random orderings, duplicates and crashes, each step succeeds once and the goal finishes once", () => {
    fc.assert(
      fc.property(scenario, ({ steps, choices, crashes }) => {
        const p = plan(
          steps.map((s, i) => ({
            id: `s${i}`,
            dependsOn: s.deps,
            replicas: s.replicas,
            input: Object.fromEntries(s.deps.map((d) => [d, `\${steps.${d}.output}`])),
            maxAttempts: 3,
          })),
        );
        let state = initGoal({
          goalId: "g1",
          tenantId: "t1",
          kind: "k",
          createdAtMs: 0,
          deadlineMs: 1e12,
        }).state;
        const all: GoalCommand[] = [];
        const apply = (input: GoalInput) => {
          const t = reduceGoal(state, input);
          // Replaying from persisted JSON gives the same result.
          const replay = reduceGoal(JSON.parse(JSON.stringify(state)), input);
          expect(JSON.parse(JSON.stringify(replay.state))).toEqual(
            JSON.parse(JSON.stringify(t.state)),
          );
          state = t.state;
          all.push(...t.commands);
          for (const c of t.commands) {
            if (c.type === "dispatchJob") inbox.push(c.job);
            if (c.type === "scheduleRetry")
              timers.push({ stepId: c.stepId, attempt: c.attempt, at: c.at });
          }
        };
        const inbox: StepJob[] = [];
        const delivered: GoalInput[] = [];
        const timers: Array<{ stepId: string; attempt: number; at: number }> = [];
        apply({ type: "planned", plan: p, at: 0 });
        let now = 1;
        let k = 0;
        for (let round = 0; round < 400 && state.status === GoalStatus.RUNNING; round++) {
          const c = choices[k++ % choices.length]! + round;
          if (crashes.includes(round)) {
            // A crash: reload from JSON and re-arm; re-dispatched jobs join the inbox.
            state = JSON.parse(JSON.stringify(state));
            for (const cmd of recoverGoal(state)) {
              if (cmd.type === "dispatchJob") inbox.push(cmd.job);
            }
            continue;
          }
          const action = c % 4;
          if (action === 0 && delivered.length > 0) {
            apply({ ...delivered[c % delivered.length]!, at: now++ } as GoalInput); // duplicate
          } else if (action === 1 && timers.length > 0) {
            const t = timers.splice(c % timers.length, 1)[0]!;
            apply({
              type: "retryDue",
              stepId: t.stepId,
              attempt: t.attempt,
              at: Math.max(now++, t.at),
            });
          } else if (inbox.length > 0) {
            const job = inbox.splice(c % inbox.length, 1)[0]!;
            const index = Number(job.stepId.slice(1));
            const input: GoalInput =
              steps[index]!.failFirst && job.attempt === 1
                ? fail(job, now++)
                : ok(job, { step: job.stepId, input: job.input as JsonValue }, now++);
            delivered.push(input);
            apply(input);
          } else if (timers.length > 0) {
            const t = timers.shift()!;
            apply({
              type: "retryDue",
              stepId: t.stepId,
              attempt: t.attempt,
              at: Math.max(now++, t.at),
            });
          }
        }
        expect(state.status).toBe(GoalStatus.SUCCEEDED);
        const succeeded = all.flatMap((c) =>
          c.type === "emitEvent" && c.event.kind.case === "stepSucceeded"
            ? [c.event.kind.value.stepId]
            : [],
        );
        expect([...succeeded].sort()).toEqual(steps.map((_, i) => `s${i}`).sort());
        expect(all.filter((c) => c.type === "finishGoal")).toHaveLength(1);
        expect(
          all.filter((c) => c.type === "emitEvent" && c.event.kind.case === "finished"),
        ).toHaveLength(1);
        const seq = all.flatMap((c) => (c.type === "emitEvent" ? [Number(c.event.sequence)] : []));
        expect(seq).toEqual(seq.map((_, i) => i + 2)); // 1 was "submitted"
        // Each step's output was built from its dependencies' outputs.
        for (const [i, s] of steps.entries()) {
          const out = state.steps[`s${i}`]!.output as { input: Record<string, unknown> };
          expect(Object.keys(out.input).sort()).toEqual([...s.deps].sort());
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("outcome", () => {
  it("summarises a finished goal for learning", async () => {
    const { goalOutcome } = await import("./outcome.js");
    const { DecisionContextSchema } = await import("../../../gen/agentmesh/v1/common_pb.js");
    const d = new Driver();
    d.send({ type: "planned", at: 0, plan: plan([{ id: "a", maxAttempts: 2 }]) });
    expect(goalOutcome(d.state, create(DecisionContextSchema, {}))).toBeUndefined();
    d.send(fail(d.jobs()[0]!, 10));
    d.send({ type: "retryDue", stepId: "a", attempt: 2, at: 210 });
    d.send(ok(d.jobs()[1]!, "x", 300));
    const o = goalOutcome(d.state, create(DecisionContextSchema, { goalKind: "demo" }))!;
    expect(o.success).toBe(true);
    expect(o.strategy).toBe("s");
    expect(o.agentResults.map((r) => r.success)).toEqual([false, true]);
    expect(Number(o.latency!.seconds) * 1000 + o.latency!.nanos / 1e6).toBe(300);
  });
});
