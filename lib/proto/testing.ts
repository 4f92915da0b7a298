/**
 * Random messages of every type the mesh defines, for tests that compare an
 * encoder with protobuf-es's own (`binary-encoder.test.ts`, `json-encoder.test.ts`).
 */
import { create, type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { StructSchema, ValueSchema } from "@bufbuild/protobuf/wkt";
import * as admin from "../../gen/agentmesh/v1/admin_pb.js";
import * as common from "../../gen/agentmesh/v1/common_pb.js";
import * as executor from "../../gen/agentmesh/v1/executor_pb.js";
import * as jobs from "../../gen/agentmesh/v1/jobs_pb.js";
import * as learning from "../../gen/agentmesh/v1/learning_pb.js";
import * as planner from "../../gen/agentmesh/v1/planner_pb.js";
import * as registry from "../../gen/agentmesh/v1/registry_pb.js";

/** Every message type the mesh defines, nested ones included, and the JSON well-known types. */
export function allMessages(): DescMessage[] {
  const found = new Set<DescMessage>([StructSchema, ValueSchema]);
  const visit = (m: DescMessage) => {
    if (found.has(m) && m !== StructSchema && m !== ValueSchema) return;
    found.add(m);
    for (const n of m.nestedMessages) visit(n);
  };
  for (const mod of [admin, common, executor, jobs, learning, planner, registry]) {
    for (const value of Object.values(mod)) {
      if (
        typeof value === "object" &&
        value !== null &&
        (value as DescMessage).kind === "message"
      ) {
        visit(value as DescMessage);
      }
    }
  }
  return [...found];
}

/** A small seeded generator, so a failure repeats. */
export function rng(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof rng>;

const strings = [
  "",
  "a",
  "3f2b1c9e-8a7d-4e6f-9b1a-2c3d4e5f6a7b",
  "x".repeat(127),
  "x".repeat(128),
  "y".repeat(300),
  "café",
  "日本語",
  "emoji 🚀",
  "lone \ud800 surrogate",
  `${"z".repeat(126)}é`,
];

function scalarValue(r: Rng, type: ScalarType): unknown {
  switch (type) {
    case ScalarType.STRING:
      return r.pick(strings);
    case ScalarType.BOOL:
      return r.chance(0.5);
    case ScalarType.BYTES:
      return new Uint8Array(r.pick([0, 1, 5, 200])).map((_, i) => (i * 7) & 0xff);
    case ScalarType.DOUBLE:
      return r.pick([0, -0, 1.5, -2.25, 1e300, Number.NaN, Number.POSITIVE_INFINITY]);
    case ScalarType.FLOAT:
      return r.pick([0, -0, 1.5, -2.25, 3.4e38]);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return r.pick([0, 1, -1, 127, 128, 300, 2 ** 31 - 1, -(2 ** 31)]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return r.pick([0, 1, 127, 128, 16_384, 2 ** 32 - 1]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return r.pick([0n, 1n, -1n, 2n ** 40n, -(2n ** 63n), 2n ** 63n - 1n]);
    default:
      return r.pick([0n, 1n, 2n ** 35n, 2n ** 64n - 1n]);
  }
}

function jsonValue(r: Rng, depth: number): unknown {
  switch (r.int(depth > 2 ? 4 : 6)) {
    case 0:
      return null;
    case 1:
      return r.pick([0, 1.5, -3, 1e21]);
    case 2:
      return r.pick(strings);
    case 3:
      return r.chance(0.5);
    case 4:
      return Array.from({ length: r.int(3) }, () => jsonValue(r, depth + 1));
    default:
      return jsonObject(r, depth + 1);
  }
}

function jsonObject(r: Rng, depth: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = r.int(4); i > 0; i--) o[r.pick(strings)] = jsonValue(r, depth);
  return o;
}

function fieldValue(r: Rng, f: DescField, parent: DescMessage, depth: number): unknown {
  const message = (m: DescMessage, inList: boolean) => {
    if (m.typeName === "google.protobuf.Struct" && parent.typeName !== "google.protobuf.Value") {
      return jsonObject(r, depth);
    }
    if (m.typeName.startsWith("google.protobuf.") && m.typeName.endsWith("Value") && !inList) {
      if (m.typeName !== "google.protobuf.Value" && m.typeName !== "google.protobuf.ListValue") {
        if (f.oneof === undefined)
          return scalarValue(r, (m.fields[0] as { scalar: ScalarType }).scalar);
      }
    }
    return randomMessage(r, m, depth + 1);
  };
  switch (f.fieldKind) {
    case "scalar":
      return scalarValue(r, f.scalar);
    case "enum":
      return r.chance(0.8) ? r.pick(f.enum.values).number : 0;
    case "message":
      return message(f.message, false);
    case "list":
      return Array.from({ length: r.int(4) }, () =>
        f.listKind === "message"
          ? message(f.message, true)
          : f.listKind === "enum"
            ? r.pick(f.enum.values).number
            : scalarValue(r, f.scalar),
      );
    case "map": {
      const o: Record<string, unknown> = {};
      for (let i = r.int(4); i > 0; i--) {
        o[r.pick(strings)] =
          f.mapKind === "message"
            ? message(f.message, true)
            : f.mapKind === "enum"
              ? r.pick(f.enum.values).number
              : scalarValue(r, f.scalar);
      }
      return o;
    }
  }
}

export function randomMessage(r: Rng, desc: DescMessage, depth = 0): Record<string, unknown> {
  const m = create(desc) as unknown as Record<string, unknown>;
  // Within the ranges the JSON mapping accepts.
  if (desc.typeName === "google.protobuf.Timestamp") {
    m.seconds = r.pick([0n, 1_700_000_000n, -86_400n, 253_402_300_799n]);
    m.nanos = r.pick([0, 1, 5_000_000, 123_456_000, 999_999_999]);
    return m;
  }
  if (desc.typeName === "google.protobuf.Duration") {
    m.seconds = r.pick([0n, 3n, -3n, 86_400n]);
    m.nanos =
      m.seconds === 0n ? r.pick([0, 1, -500_000_000]) : (m.seconds as bigint) > 0n ? 250_000 : -7;
    return m;
  }
  if (depth > 4) return m;
  for (const f of desc.fields) {
    if (r.chance(0.4)) continue;
    if (f.oneof) {
      if (r.chance(0.5))
        m[f.oneof.localName] = { case: f.localName, value: fieldValue(r, f, desc, depth) };
    } else {
      m[f.localName] = fieldValue(r, f, desc, depth);
    }
  }
  if (r.chance(0.1)) {
    m.$unknown = [{ no: 9_999, wireType: 0, data: new Uint8Array([0x96, 0x01]) }];
  }
  return m;
}
