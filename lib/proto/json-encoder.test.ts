import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { StepJobSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { encodeJson, encodeJsonFallbacks } from "./json-encoder.js";
import { allMessages, randomMessage, rng } from "./testing.js";

/** What a conversion gave: its JSON text (key order included) or its error. */
function outcome(convert: () => unknown): string {
  try {
    return JSON.stringify(convert());
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

describe("encodeJson", () => {
  it("gives toJson's JSON for random messages of every type", () => {
    const r = rng(7);
    let compared = 0;
    let rejected = 0;
    for (const desc of allMessages()) {
      for (let i = 0; i < 40; i++) {
        const message = randomMessage(r, desc) as never;
        const expected = outcome(() => toJson(desc, message));
        if (expected.startsWith("error:")) rejected++;
        expect(
          outcome(() => encodeJson(desc, message)),
          `${desc.typeName} #${i}`,
        ).toBe(expected);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(4_000);
    // Non-finite numbers in a Value are the only random values toJson refuses.
    expect(rejected).toBeLessThan(compared / 4);
  });

  it("converts a goal's events and jobs without falling back", () => {
    const before = encodeJsonFallbacks();
    const event = create(GoalEventSchema, {
      goalId: "g",
      tenantId: "acme",
      sequence: 3n,
      time: timestampFromMs(1_700_000_000_123),
      kind: { case: "submitted", value: { kind: "summarize" } },
    });
    expect(encodeJson(GoalEventSchema, event)).toEqual(toJson(GoalEventSchema, event));
    const job = create(StepJobSchema, {
      goalId: "g",
      attempt: 2,
      input: { text: "hi", n: 1.5, list: [null, true, { a: "b" }] },
      attemptDeadline: timestampFromMs(0),
    });
    expect(encodeJson(StepJobSchema, job)).toEqual(toJson(StepJobSchema, job));
    const value = create(ValueSchema, { kind: { case: "stringValue", value: "out" } });
    expect(encodeJson(ValueSchema, value)).toBe("out");
    expect(encodeJsonFallbacks() - before).toBe(0);
  });
});
