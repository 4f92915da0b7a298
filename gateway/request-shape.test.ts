import { create, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { SubmitGoalRequestSchema } from "../gen/agentmesh/v1/executor_pb.js";
import { jsonShapeProblem, protoShapeProblem, type ShapeLimits } from "./request-shape.js";

const limits: ShapeLimits = { maxDepth: 5, maxListLength: 100, maxValues: 250 };

/** A SubmitGoal request with `input` in both encodings. */
function both(input: { [k: string]: JsonValue }) {
  const json = new TextEncoder().encode(JSON.stringify({ kind: "k", input }));
  const proto = toBinary(
    SubmitGoalRequestSchema,
    create(SubmitGoalRequestSchema, { kind: "k", input }),
  );
  return {
    json: jsonShapeProblem(json, limits),
    proto: protoShapeProblem(SubmitGoalRequestSchema, proto, limits),
  };
}

const nest = (levels: number): JsonValue => (levels === 0 ? 1 : [nest(levels - 1)]);

describe("request shape", () => {
  it("passes what is within every limit, in JSON and protobuf alike", () => {
    const ok = both({
      a: [1, 2, 3],
      b: { c: "x,y[{" },
      list: Array.from({ length: 100 }, () => 1),
    });
    expect(ok).toEqual({ json: undefined, proto: undefined });
    // request (1) > input (2) > nest: three more lists reach level 5.
    expect(both({ deep: nest(3) })).toEqual({ json: undefined, proto: undefined });
  });

  it("refuses nesting past the depth limit", () => {
    const r = both({ deep: nest(4) });
    expect(r.json).toMatch(/nests deeper than 5 levels/);
    expect(r.proto).toMatch(/nests deeper than 5 levels/);
  });

  it("refuses a list or an object past the length limit", () => {
    const list = both({ list: Array.from({ length: 101 }, () => 1) });
    expect(list.json).toMatch(/more than 100 elements/);
    expect(list.proto).toMatch(/more than 100 elements/);
    const wide = both(Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, i])));
    expect(wide.json).toMatch(/more than 100 elements/);
    expect(wide.proto).toMatch(/more than 100 elements/);
  });

  it("refuses too many values in all, however they are split", () => {
    const r = both({ a: Array.from({ length: 3 }, () => Array.from({ length: 90 }, () => 1)) });
    expect(r.json).toMatch(/more than 250 values/);
    expect(r.proto).toMatch(/more than 250 values/);
  });

  it("does not count commas and brackets inside strings", () => {
    const r = both({ s: `${"[".repeat(50)}${",".repeat(500)}\\"[` });
    expect(r).toEqual({ json: undefined, proto: undefined });
  });

  it("leaves a malformed body to the decoder, and never recurses past the limit", () => {
    expect(protoShapeProblem(SubmitGoalRequestSchema, Uint8Array.from([0x1a, 0xff]), limits)).toBe(
      undefined,
    );
    // 100 000 nested lists: refused at level 6 without a deep recursion.
    const deep = new TextEncoder().encode(`${"[".repeat(100_000)}${"]".repeat(100_000)}`);
    expect(jsonShapeProblem(deep, limits)).toMatch(/deeper/);
  });

  it("scans a megabyte in milliseconds", () => {
    const big = new TextEncoder().encode(
      JSON.stringify({ nums: Array.from({ length: 500_000 }, () => 1) }),
    );
    const generous = { maxDepth: 32, maxListLength: 1e9, maxValues: 1e9 };
    const t = performance.now();
    expect(jsonShapeProblem(big, generous)).toBeUndefined();
    // Linear and allocation-free: about 10 ms idle; the decoding it spares takes seconds.
    expect(performance.now() - t).toBeLessThan(1000);
  });
});
