import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import * as jobs from "../../gen/agentmesh/v1/jobs_pb.js";
import { encodeBinary, encodeBinaryFallbacks } from "./binary-encoder.js";
import { allMessages, randomMessage, rng } from "./testing.js";

/** Compared as buffers: vitest's deep equality is slow on large arrays. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what = "") {
  if (!Buffer.from(actual).equals(Buffer.from(expected))) expect(actual, what).toEqual(expected);
}

describe("encodeBinary", () => {
  const types = allMessages();

  it("gives toBinary's bytes for random messages of every type, without falling back", () => {
    const r = rng(23);
    const before = encodeBinaryFallbacks();
    let compared = 0;
    for (const desc of types) {
      for (let i = 0; i < 40; i++) {
        const message = randomMessage(r, desc) as never;
        expectSameBytes(
          encodeBinary(desc, message),
          toBinary(desc, message),
          `${desc.typeName} #${i}`,
        );
        compared++;
      }
    }
    expect(types.length).toBeGreaterThan(100);
    expect(compared).toBe(types.length * 40);
    expect(encodeBinaryFallbacks() - before).toBe(0);
  });

  it("writes nested lengths of two and three bytes, and buffers past its first size", () => {
    const big = (n: number) =>
      create(jobs.StepJobSchema, {
        goalId: "g",
        attemptDeadline: timestampFromMs(1_700_000_000_123),
        input: { text: "é".repeat(n), nested: { list: ["a".repeat(n), 1, null] } },
      });
    for (const n of [40, 5_000, 70_000, 700_000]) {
      const job = big(n);
      expectSameBytes(encodeBinary(jobs.StepJobSchema, job), toBinary(jobs.StepJobSchema, job));
    }
    // The buffer grown for the last is dropped; small messages still encode.
    const small = big(1);
    expectSameBytes(encodeBinary(jobs.StepJobSchema, small), toBinary(jobs.StepJobSchema, small));
  });

  it("leaves what it does not cover to toBinary, errors included", () => {
    const bad = create(jobs.StepJobSchema, { attempt: 1 });
    (bad as unknown as { attempt: number }).attempt = 1.5;
    expect(() => encodeBinary(jobs.StepJobSchema, bad)).toThrow(/attempt/);
    const stringly = create(jobs.StepJobSchema, { goalId: "g" });
    (stringly as unknown as { attempt: string }).attempt = "7";
    expect(encodeBinary(jobs.StepJobSchema, stringly)).toEqual(
      toBinary(jobs.StepJobSchema, stringly),
    );
  });
});
