import { create, fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { getTextEncoding } from "@bufbuild/protobuf/wire";
import { timestampFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { StepResultSchema, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import { encodeUtf8, useFastUtf8Encoding } from "./fast-utf8.js";

const samples = [
  "",
  "a",
  "3f2b1c9e-8a7d-4e6f-9b1a-2c3d4e5f6a7b:echo:1:0",
  "x".repeat(64),
  "x".repeat(65),
  "\u007f\u0000\t\n",
  "café",
  "ascii then ü",
  "日本語のテキスト",
  "emoji 🚀 here",
  "lone \ud800 surrogate",
  "\udc00",
  `${"y".repeat(63)}é`,
];

describe("encodeUtf8", () => {
  it("gives TextEncoder's bytes for every string", () => {
    const standard = new TextEncoder();
    for (const s of samples) expect(encodeUtf8(s), JSON.stringify(s)).toEqual(standard.encode(s));
  });
});

describe("useFastUtf8Encoding", () => {
  it("leaves protobuf bytes unchanged and round-trips every string", () => {
    const result = (text: string) =>
      create(StepResultSchema, {
        attemptId: text,
        goalId: "3f2b1c9e-8a7d-4e6f-9b1a-2c3d4e5f6a7b",
        tenantId: "acme",
        agentId: text,
        status: StepResultStatus.SUCCEEDED,
        finishedAt: timestampFromMs(1_700_000_000_000),
        output: fromJson(ValueSchema, { [text]: text, list: [text, 1, true] }),
      });
    const before = samples.map((s) => toBinary(StepResultSchema, result(s)));
    const standardEncode = getTextEncoding().encodeUtf8;
    useFastUtf8Encoding();
    expect(getTextEncoding().encodeUtf8).not.toBe(standardEncode);
    samples.forEach((s, i) => {
      const bytes = toBinary(StepResultSchema, result(s));
      expect(bytes).toEqual(before[i]);
      const back = fromBinary(StepResultSchema, bytes);
      // A lone surrogate is not UTF-8: both encoders write U+FFFD for it.
      expect(back.agentId).toBe(new TextDecoder().decode(new TextEncoder().encode(s)));
    });
  });
});
