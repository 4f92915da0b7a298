/**
 * protobuf-es's `toJson` with its default options, compiled per message type
 * (as `encodeBinary` is for `toBinary`). The executor stores every goal event
 * and plan as JSON; `toJson` walked each through the reflection layer and
 * parsed two date strings for every timestamp, about 3 % of its CPU.
 *
 * The JSON is `toJson`'s, value for value and key order included
 * (`json-encoder.test.ts` compares them over random messages of every type the
 * mesh defines). Not covered, and left to `toJson`: `google.protobuf.Any` and
 * `FieldMask`, maps keyed by anything but strings, groups and proto2 required
 * fields, and values of an unexpected type (which `toJson` converts or rejects
 * with its own error).
 *
 * @example
 * const data = encodeJson(GoalEventSchema, event); // toJson(GoalEventSchema, event)
 */
import {
  type DescEnum,
  type DescMessage,
  type JsonObject,
  type JsonValue,
  type Message,
  ScalarType,
  toJson,
} from "@bufbuild/protobuf";

enum Kind {
  Scalar,
  Enum,
  Message,
  /** A Struct field holding a JsonObject, or a wrappers.proto field holding its plain value. */
  Plain,
  ScalarList,
  EnumList,
  MessageList,
  PlainList,
  ScalarMap,
  EnumMap,
  MessageMap,
  PlainMap,
}

interface FieldPlan {
  kind: Kind;
  localName: string;
  jsonName: string;
  oneof: string | undefined;
  implicit: boolean;
  ownOnly: boolean;
  scalar: ScalarType;
  enumDesc: DescEnum | undefined;
  message: DescMessage | undefined;
}

const plans = new WeakMap<DescMessage, FieldPlan[] | null>();
const implicitPresence = 2;
const legacyRequired = 3;
const wrapperTypes = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map(
    (t) => `google.protobuf.${t}Value`,
  ),
);

/** Thrown to hand a message to `toJson`. */
const unsupported = new Error("not covered by encodeJson");

function planOf(desc: DescMessage): FieldPlan[] | null {
  let plan = plans.get(desc);
  if (plan === undefined) {
    plan = compile(desc);
    plans.set(desc, plan);
  }
  return plan;
}

function compile(desc: DescMessage): FieldPlan[] | null {
  const out: FieldPlan[] = [];
  for (const f of [...desc.fields].sort((a, b) => a.number - b.number)) {
    if (f.presence === legacyRequired) return null;
    const plan: FieldPlan = {
      kind: Kind.Scalar,
      localName: f.localName,
      jsonName: f.jsonName,
      oneof: f.oneof?.localName,
      implicit: f.presence === implicitPresence && f.oneof === undefined,
      ownOnly: f.presence !== implicitPresence && f.oneof === undefined,
      scalar: ScalarType.INT32,
      enumDesc: undefined,
      message: undefined,
    };
    // What protobuf-es keeps as plain values: Struct fields (outside Value) as JsonObject,
    // singular wrapper fields outside oneofs as their value.
    const plain = (m: DescMessage, singular: boolean) =>
      (m.typeName === "google.protobuf.Struct" && desc.typeName !== "google.protobuf.Value") ||
      (singular && f.oneof === undefined && wrapperTypes.has(m.typeName));
    switch (f.fieldKind) {
      case "scalar":
        plan.scalar = f.scalar;
        break;
      case "enum":
        plan.kind = Kind.Enum;
        plan.enumDesc = f.enum;
        break;
      case "message":
        plan.message = f.message;
        plan.kind = plain(f.message, true) ? Kind.Plain : Kind.Message;
        break;
      case "list":
        if (f.listKind === "scalar") {
          plan.kind = Kind.ScalarList;
          plan.scalar = f.scalar;
        } else if (f.listKind === "enum") {
          plan.kind = Kind.EnumList;
          plan.enumDesc = f.enum;
        } else {
          plan.message = f.message;
          plan.kind = plain(f.message, false) ? Kind.PlainList : Kind.MessageList;
        }
        break;
      case "map":
        if (f.mapKey !== ScalarType.STRING) return null;
        if (f.mapKind === "scalar") {
          plan.kind = Kind.ScalarMap;
          plan.scalar = f.scalar;
        } else if (f.mapKind === "enum") {
          plan.kind = Kind.EnumMap;
          plan.enumDesc = f.enum;
        } else {
          plan.message = f.message;
          plan.kind = plain(f.message, false) ? Kind.PlainMap : Kind.MessageMap;
        }
        break;
    }
    out.push(plan);
  }
  return out;
}

function isZero(type: ScalarType, v: unknown): boolean {
  switch (type) {
    case ScalarType.BOOL:
      return v === false;
    case ScalarType.STRING:
      return v === "";
    case ScalarType.BYTES:
      return v instanceof Uint8Array && v.byteLength === 0;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Object.is(v, 0);
    default:
      // biome-ignore lint/suspicious/noDoubleEquals: matches 0, 0n and "0", as protobuf-es does
      return v == 0;
  }
}

function scalar(type: ScalarType, v: unknown): JsonValue {
  switch (type) {
    case ScalarType.STRING:
      if (typeof v !== "string") throw unsupported;
      return v;
    case ScalarType.BOOL:
      if (typeof v !== "boolean") throw unsupported;
      return v;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      if (typeof v !== "number") throw unsupported;
      if (Number.isNaN(v)) return "NaN";
      if (v === Number.POSITIVE_INFINITY) return "Infinity";
      if (v === Number.NEGATIVE_INFINITY) return "-Infinity";
      return v;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      if (typeof v === "bigint" || typeof v === "string") return v.toString();
      if (typeof v === "number" && Number.isInteger(v)) return v.toString();
      throw unsupported;
    case ScalarType.BYTES:
      if (!(v instanceof Uint8Array)) throw unsupported;
      return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
    default:
      if (typeof v !== "number") throw unsupported;
      return v;
  }
}

function enumValue(desc: DescEnum, v: unknown): JsonValue {
  if (typeof v !== "number") throw unsupported;
  if (desc.typeName === "google.protobuf.NullValue") return null;
  return desc.value[v]?.name ?? v;
}

/** A message (in its protobuf-es form) as JSON, well-known types as the JSON mapping has them. */
function message(desc: DescMessage, m: unknown): JsonValue {
  if (typeof m !== "object" || m === null) throw unsupported;
  const v = m as Record<string, unknown>;
  if (desc.typeName.startsWith("google.protobuf.")) {
    switch (desc.typeName) {
      case "google.protobuf.Timestamp":
        return timestamp(v.seconds, v.nanos);
      case "google.protobuf.Duration":
        return duration(v.seconds, v.nanos);
      case "google.protobuf.Any":
      case "google.protobuf.FieldMask":
        throw unsupported;
      case "google.protobuf.Struct":
        return structMessage(v);
      case "google.protobuf.Value":
        return valueMessage(v);
      case "google.protobuf.ListValue":
        return listValueMessage(v);
      default:
        if (wrapperTypes.has(desc.typeName)) {
          return scalar((desc.fields[0] as { scalar: ScalarType }).scalar, v.value);
        }
    }
  }
  const plan = planOf(desc);
  if (plan === null) throw unsupported;
  const json: JsonObject = {};
  for (let i = 0; i < plan.length; i++) {
    const f = plan[i]!;
    // The same presence read as in binary-encoder.ts, kept inline on purpose: one helper
    // shared by both encoders' plan shapes made encodeJson about 2× slower (polymorphic reads).
    let value: unknown;
    if (f.oneof !== undefined) {
      const group = v[f.oneof] as { case: string | undefined; value?: unknown } | undefined;
      if (group === undefined) throw unsupported;
      if (group.case !== f.localName) continue;
      value = group.value;
    } else {
      value = v[f.localName];
      if (value === undefined) {
        if (f.implicit) throw unsupported;
        continue;
      }
      if (f.ownOnly && !Object.hasOwn(v, f.localName)) continue;
    }
    switch (f.kind) {
      case Kind.Scalar:
        if (f.implicit && isZero(f.scalar, value)) continue;
        json[f.jsonName] = scalar(f.scalar, value);
        break;
      case Kind.Enum:
        if (f.implicit && value === f.enumDesc!.values[0]!.number) continue;
        json[f.jsonName] = enumValue(f.enumDesc!, value);
        break;
      case Kind.Message:
        json[f.jsonName] = message(f.message!, value);
        break;
      case Kind.Plain:
        json[f.jsonName] = plain(f.message!, value);
        break;
      default: {
        const collected = collection(f, value);
        if (collected !== undefined) json[f.jsonName] = collected;
      }
    }
  }
  return json;
}

function collection(f: FieldPlan, value: unknown): JsonValue | undefined {
  if (f.kind <= Kind.PlainList) {
    if (!Array.isArray(value)) throw unsupported;
    if (value.length === 0) return undefined;
    switch (f.kind) {
      case Kind.ScalarList:
        return value.map((x) => scalar(f.scalar, x));
      case Kind.EnumList:
        return value.map((x) => enumValue(f.enumDesc!, x));
      case Kind.MessageList:
        return value.map((x) => message(f.message!, x));
      default:
        return value.map((x) => plain(f.message!, x));
    }
  }
  if (typeof value !== "object" || value === null) throw unsupported;
  const keys = Object.keys(value);
  if (keys.length === 0) return undefined;
  const map = value as Record<string, unknown>;
  const json: JsonObject = {};
  for (const k of keys) {
    const x = map[k];
    json[k] =
      f.kind === Kind.ScalarMap
        ? scalar(f.scalar, x)
        : f.kind === Kind.EnumMap
          ? enumValue(f.enumDesc!, x)
          : f.kind === Kind.MessageMap
            ? message(f.message!, x)
            : plain(f.message!, x);
  }
  return json;
}

/** A field value protobuf-es keeps plain: a Struct's JsonObject, a wrapper's value. */
function plain(desc: DescMessage, v: unknown): JsonValue {
  if (desc.typeName === "google.protobuf.Struct") return jsonObject(v);
  return scalar((desc.fields[0] as { scalar: ScalarType }).scalar, v);
}

/** A JsonObject as toJson gives it back from a Struct: a copy, numbers finite, no undefined. */
function jsonObject(v: unknown): JsonObject {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw unsupported;
  const out: JsonObject = {};
  for (const k of Object.keys(v)) out[k] = jsonValue((v as Record<string, unknown>)[k]);
  return out;
}

function jsonValue(v: unknown): JsonValue {
  switch (typeof v) {
    case "number":
      if (!Number.isFinite(v)) throw unsupported;
      return v;
    case "string":
    case "boolean":
      return v;
    case "object":
      if (v === null) return null;
      if (Array.isArray(v)) return v.map(jsonValue);
      return jsonObject(v);
    default:
      throw unsupported;
  }
}

function structMessage(v: Record<string, unknown>): JsonObject {
  const fields = v.fields as Record<string, unknown> | undefined;
  if (typeof fields !== "object" || fields === null) throw unsupported;
  const out: JsonObject = {};
  for (const k of Object.keys(fields)) out[k] = valueMessage(fields[k]);
  return out;
}

function valueMessage(m: unknown): JsonValue {
  const kind = (m as { kind?: { case?: string; value?: unknown } } | null)?.kind;
  switch (kind?.case) {
    case "nullValue":
      return null;
    case "numberValue":
      if (typeof kind.value !== "number" || !Number.isFinite(kind.value)) throw unsupported;
      return kind.value;
    case "boolValue":
    case "stringValue":
      return kind.value as JsonValue;
    case "structValue":
      return structMessage(kind.value as Record<string, unknown>);
    case "listValue":
      return listValueMessage(kind.value as Record<string, unknown>);
    default:
      throw unsupported;
  }
}

function listValueMessage(v: Record<string, unknown>): JsonValue[] {
  if (!Array.isArray(v.values)) throw unsupported;
  return v.values.map(valueMessage);
}

const minTimestampMs = -62_135_596_800_000; // 0001-01-01T00:00:00Z
const maxTimestampMs = 253_402_300_799_000; // 9999-12-31T23:59:59Z

/** The date and time of the last second formatted: events come many to a second. */
let lastSeconds = Number.NaN;
let lastPrefix = "";

/**
 * As toJson's, without parsing its two range bounds from strings each time, and
 * formatting a second once (`toISOString` costs microseconds).
 */
function timestamp(seconds: unknown, nanos: unknown): string {
  if (typeof seconds !== "bigint" || typeof nanos !== "number") throw unsupported;
  const s = Number(seconds);
  const ms = s * 1000;
  if (ms < minTimestampMs || ms > maxTimestampMs || nanos < 0 || nanos > 999_999_999) {
    throw unsupported;
  }
  if (s !== lastSeconds) {
    // "YYYY-MM-DDTHH:MM:SS" of "YYYY-MM-DDTHH:MM:SS.000Z": years 1–9999 have four digits.
    lastPrefix = new Date(ms).toISOString().substring(0, 19);
    lastSeconds = s;
  }
  if (nanos === 0) return `${lastPrefix}Z`;
  const digits = (nanos + 1_000_000_000).toString().substring(1);
  if (digits.substring(3) === "000000") return `${lastPrefix}.${digits.substring(0, 3)}Z`;
  if (digits.substring(6) === "000") return `${lastPrefix}.${digits.substring(0, 6)}Z`;
  return `${lastPrefix}.${digits}Z`;
}

/** As toJson's. */
function duration(seconds: unknown, nanos: unknown): string {
  if (typeof seconds !== "bigint" || typeof nanos !== "number") throw unsupported;
  const s = Number(seconds);
  if (s > 315_576_000_000 || s < -315_576_000_000 || (s > 0 && nanos < 0) || (s < 0 && nanos > 0)) {
    throw unsupported;
  }
  let text = seconds.toString();
  if (nanos !== 0) {
    let digits = Math.abs(nanos).toString();
    digits = "0".repeat(9 - digits.length) + digits;
    if (digits.substring(3) === "000000") digits = digits.substring(0, 3);
    else if (digits.substring(6) === "000") digits = digits.substring(0, 6);
    text += `.${digits}`;
    if (nanos < 0 && s === 0) text = `-${text}`;
  }
  return `${text}s`;
}

let fallbacks = 0;

/** How many conversions were left to `toJson` in this process (for tests). */
export function encodeJsonFallbacks(): number {
  return fallbacks;
}

/** `toJson(schema, message)` with the default options: the same JSON, built without reflection. */
export function encodeJson(schema: DescMessage, value: Message): JsonValue {
  try {
    return message(schema, value);
  } catch {
    // Something this does not cover: toJson converts it, or rejects it with its own error.
    fallbacks++;
    return toJson(schema, value);
  }
}
