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
import { describe, expect, it } from "vitest";
import { createDataAgent } from "../../agents/data.js";
import { needNats } from "../../lib/testing/infra.js";
import { runOnBus } from "./agent-on-bus.js";

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
  it("ends every case as a terminal failure within its timeout, once, with the host responsive", {
    timeout: 180_000,
  }, async () => {
    const timeoutMs = 30_000;
    const agent = createDataAgent(); // the shipped limits
    const { outcomes, health } = await runOnBus({
      natsUrl: nats!.url,
      agent,
      capability: "data.transform",
      cases,
      batch: agent.skills["data.transform"]!.maxConcurrency!,
      timeoutMs,
      warmUp: { expression: "$sum(x)", data: { x: [1] } },
    });
    for (const [i, row] of outcomes.entries()) {
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
    expect(health.failed, JSON.stringify(health)).toBe(0);
    expect(health.maxMs, JSON.stringify(health)).toBeLessThan(100);
    expect(health.answered).toBeGreaterThan(10);
  });

  it("keeps working after the storm", async () => {
    const { outcomes } = await runOnBus({
      natsUrl: nats!.url,
      agent: createDataAgent(),
      capability: "data.transform",
      cases: [
        { name: "crash", input: { expression: '$length($pad("", 200000000))' } },
        { name: "sum", input: { expression: "$sum(x)", data: { x: [1, 2] } } },
      ],
      batch: 1,
      timeoutMs: 30_000,
      warmUp: { expression: "$sum(x)", data: { x: [1] } },
    });
    expect(outcomes[1]).toMatchObject({ status: "SUCCEEDED", output: '{"result":3}' });
  });
});
