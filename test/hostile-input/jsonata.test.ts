/**
 * Hostile JSONata through the real agent runtime on real JetStream: the
 * shipped data agent (`runAgent(createDataAgent())`, default limits) consumes
 * `data.transform` jobs whose expressions exhaust memory, backtrack, recurse
 * or build huge values. For each: the job ends with a FAILED, non-retryable
 * result naming the limit, within its timeout; the handler ran once (no
 * redelivery, even after the ack wait); and `/healthz` of the process hosting
 * the agent answered within 100 ms throughout.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDataAgent } from "../../agents/data.js";
import { type StepResult, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import { createJetStreamBus } from "../../lib/bus/jetstream-bus.js";
import { stepJob, waitFor } from "../../lib/bus/job-bus.contract.js";
import type { JobBus, Subscription } from "../../lib/bus/job-bus.js";
import { createLogger } from "../../lib/log/logger.js";
import { needNats, runId } from "../../lib/testing/infra.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { type RunningAgent, runAgent } from "../../sdk/agent/run-agent.js";
import { type HealthProbe, startHealthProbe } from "./health-probe.js";

const nats = await needNats();

/** What a hostile expression may end as: the limit it hits (memory may also run into the clock). */
const memory = ["RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"];
const time = ["DEADLINE_EXCEEDED"];
const size = ["RESOURCE_EXHAUSTED"];

const backtrack = `${"a".repeat(30)}!`;

const cases: { name: string; input: JsonObject; codes: string[] }[] = [
  // The finding: V8 aborts the process allocating this.
  { name: "$pad to 200M", input: { expression: '$length($pad("", 200000000))' }, codes: memory },
  { name: "$pad left to 200M", input: { expression: '$pad("", -200000000, "x")' }, codes: memory },
  {
    name: "$join of 5,000 100 KB strings",
    input: { expression: '$join($map([1..5000], function($v){ $pad("", 100000, "x") }))' },
    codes: memory,
  },
  {
    name: "$string of 100,000 objects",
    input: { expression: '$string([1..99999].{"a": $pad("", 1000, "y")})' },
    codes: memory,
  },
  {
    name: "$reduce doubling a string",
    input: { expression: '$reduce([1..40], function($acc, $v){ $acc & $acc }, "xxxxxxxx")' },
    codes: memory,
  },
  {
    name: "$eval of the crash",
    input: { expression: "$eval(e)", data: { e: '$length($pad("", 200000000))' } },
    codes: memory,
  },
  { name: "range over 1e7", input: { expression: "$count([1..100000000])" }, codes: size },
  { name: "sequence over the cap", input: { expression: "$count([1..1000000])" }, codes: size },
  {
    name: "unbounded recursion",
    input: { expression: "($f := function($n){ 1 + $f($n + 1) }; $f(0))" },
    codes: size,
  },
  {
    name: "endless tail call",
    input: { expression: "($f := function($n){ $f($n + 1) }; $f(0))" },
    codes: [...time, ...size],
  },
  {
    name: "$sort with a backtracking comparator",
    input: {
      expression: "$sort([1..1000], function($a, $b){ $contains(s, /(a+)+$/) })",
      data: { s: backtrack },
    },
    codes: time,
  },
  // Regex shapes: nested, alternated and counted repetition, in every function taking a regex.
  {
    name: "$match (a+)+$",
    input: { expression: "$match(s, /(a+)+$/)", data: { s: backtrack } },
    codes: time,
  },
  {
    name: "$contains (a|aa)+$",
    input: { expression: "$contains(s, /(a|aa)+$/)", data: { s: `${"a".repeat(60)}!` } },
    codes: time,
  },
  {
    name: "$replace (a*)*b",
    input: { expression: '$replace(s, /(a*)*b/, "x")', data: { s: backtrack } },
    codes: time,
  },
  {
    name: "$split (.*a){25}",
    input: { expression: "$split(s, /(.*a){25}/)", data: { s: "a".repeat(200) } },
    codes: time,
  },
  {
    name: "$match ^(\\w+\\s?)*$",
    input: { expression: "$match(s, /^(\\w+\\s?)*$/)", data: { s: `${"word ".repeat(12)}!` } },
    codes: time,
  },
  // Payload sizes.
  { name: "result over the cap", input: { expression: '$pad("", 300000, "y")' }, codes: size },
  {
    name: "input over the cap",
    input: { expression: "$length(s)", data: { s: "x".repeat(300_000) } },
    codes: size,
  },
];

describe.skipIf(!nats)("hostile JSONata through the agent runtime on JetStream", () => {
  const prefix = runId("thjsonata");
  const ackWaitMs = 2_000;
  const calls = new Map<string, number>();
  const results: StepResult[] = [];
  let bus: JobBus;
  let agent: RunningAgent;
  let sub: Subscription;
  let probe: HealthProbe;

  beforeAll(async () => {
    bus = await createJetStreamBus({ prefix, servers: nats!.url, ackWaitMs });
    sub = await bus.consumeResults({ concurrency: 16, handler: (d) => void results.push(d.data) });
    probe = await startHealthProbe();
    const shipped = createDataAgent();
    const skill = shipped.skills["data.transform"]!;
    // The shipped agent, with a count of handler calls per attempt.
    const counted: AgentDefinition = {
      ...shipped,
      skills: {
        "data.transform": {
          ...skill,
          handler: (input, ctx) => {
            calls.set(ctx.attemptId, (calls.get(ctx.attemptId) ?? 0) + 1);
            return skill.handler(input, ctx);
          },
        },
      },
    };
    agent = await runAgent(counted, {
      bus,
      handleSignals: false,
      log: createLogger({ name: "hostile-data", level: "silent" }),
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await sub?.stop();
    await probe?.stop();
    await bus?.close();
  });

  it("ends every case as a terminal failure within its timeout, once, with the host responsive", {
    timeout: 120_000,
  }, async () => {
    const timeoutMs = 30_000;
    const jobs = cases.map((c) => ({
      c,
      job: stepJob("data.transform", { input: c.input, timeout: durationFromMs(timeoutMs) }),
    }));
    const final = (attemptId: string) =>
      results.find((r) => r.attemptId === attemptId && r.status !== StepResultStatus.STARTED);
    // As many at once as the agent runs (its sandbox processes), so no job waits past the
    // ack wait in the bus client's buffer, where nothing keeps it alive (a bus matter).
    const sentAt = new Map<string, number>();
    const batch = 2;
    for (let i = 0; i < jobs.length; i += batch) {
      const some = jobs.slice(i, i + batch);
      for (const { job } of some) sentAt.set(job.attemptId, Date.now());
      await Promise.all(some.map(({ job }) => bus.publishJob(job)));
      await waitFor(() => some.every(({ job }) => final(job.attemptId)), 60_000, "results");
    }
    // Past the ack wait: a job whose delivery was not settled would come back now.
    await new Promise((r) => setTimeout(r, ackWaitMs + 1_000));

    const rows = jobs.map(({ c, job }) => {
      const r = final(job.attemptId)!;
      const finishedMs = Number(r.finishedAt!.seconds) * 1000 + r.finishedAt!.nanos / 1e6;
      const tookMs = finishedMs - sentAt.get(job.attemptId)!;
      return {
        name: c.name,
        status: StepResultStatus[r.status],
        code: r.error?.code,
        retryable: r.error?.retryable,
        message: r.error?.message,
        calls: calls.get(job.attemptId),
        finals: results.filter(
          (x) => x.attemptId === job.attemptId && x.status !== StepResultStatus.STARTED,
        ).length,
        tookMs: Math.round(tookMs),
      };
    });
    console.table(rows.map(({ message: _, ...row }) => row));
    for (const [i, row] of rows.entries()) {
      const c = cases[i]!;
      expect(row, c.name).toMatchObject({
        status: "FAILED",
        retryable: false,
        calls: 1,
        finals: 1,
      });
      expect(c.codes, `${c.name}: ${row.code} ${row.message}`).toContain(row.code);
      expect(row.message, c.name).toMatch(/limit|memory|larger|more than|exceeded/);
      expect(row.tookMs, c.name).toBeLessThan(timeoutMs);
    }
    const health = await probe.report();
    console.log("healthz of the host during the cases:", JSON.stringify(health));
    expect(health.failed, JSON.stringify(health)).toBe(0);
    expect(health.maxMs, JSON.stringify(health)).toBeLessThan(100);
    expect(health.answered).toBeGreaterThan(10);

    // The agent still works.
    const ok = stepJob("data.transform", { input: { expression: "$sum(x)", data: { x: [1, 2] } } });
    await bus.publishJob(ok);
    await waitFor(() => Boolean(final(ok.attemptId)), 20_000, "a normal job after the storm");
    expect(final(ok.attemptId)!.status).toBe(StepResultStatus.SUCCEEDED);
  });
});
