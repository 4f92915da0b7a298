/**
 * protobuf-es's `toBinary`, compiled per message type. `toBinary` walks a
 * message through its reflection layer: a wrapper object per message, a
 * switch per field and value, a chunk array per nested message. On the
 * executor's hot path (five goal events, a job and an outcome per goal, RPC
 * answers) that was about a tenth of its CPU. Here each message type's fields
 * are turned once into a list of small plans, and a message is written in one
 * pass into a reused buffer, a nested message's length patched in after it.
 *
 * The bytes are `toBinary`'s, byte for byte (`binary-encoder.test.ts` compares
 * them over random messages of every type the mesh defines). What this does not
 * cover is left to `toBinary`: a message type using groups or proto2 required
 * fields, a map keyed by anything but strings, or a value of an unexpected type
 * (which `toBinary` then encodes or rejects with its own error).
 *
 * @example
 * const bytes = encodeBinary(GoalEventSchema, event); // toBinary(GoalEventSchema, event)
 */
import {
  type DescField,
  type DescMessage,
  type Message,
  protoInt64,
  ScalarType,
  toBinary,
} from "@bufbuild/protobuf";

/** How a field's value is written. */
enum Kind {
  Scalar,
  Message,
  /** A Struct field holding a JsonObject (as protobuf-es keeps it). */
  Struct,
  /** A wrappers.proto field holding its plain value. */
  Wrapper,
  List,
  PackedList,
  MessageList,
  StructList,
  Map,
}

interface FieldPlan {
  kind: Kind;
  localName: string;
  /** The oneof's property name when the field belongs to one. */
  oneof: string | undefined;
  /** Tag as written: field number and wire type (length-delimited for packed lists). */
  tag: number;
  scalar: ScalarType;
  /** Implicit presence (proto3 singular): the zero value is not written. */
  implicit: boolean;
  /** Explicit presence: only an own property counts (proto2 defaults sit on the prototype). */
  ownOnly: boolean;
  /** Element tag of unpacked lists and the map value's wire type. */
  valueTag: number;
  message: DescMessage | undefined;
  /** Map values: how each is written. */
  mapValue: Kind;
}

/** A message type's plans, or null when `toBinary` must encode it. */
const plans = new WeakMap<DescMessage, FieldPlan[] | null>();

const implicitPresence = 2; // FeatureSet.FieldPresence.IMPLICIT
const legacyRequired = 3;
const wrapperTypes = new Set(
  ["Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"].map(
    (t) => `google.protobuf.${t}Value`,
  ),
);

function wireType(scalar: ScalarType): number {
  switch (scalar) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return 2;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return 1;
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
    case ScalarType.FLOAT:
      return 5;
    default:
      return 0;
  }
}

function planOf(desc: DescMessage): FieldPlan[] | null {
  let plan = plans.get(desc);
  if (plan !== undefined) return plan;
  plan = compile(desc);
  plans.set(desc, plan);
  return plan;
}

function compile(desc: DescMessage): FieldPlan[] | null {
  const out: FieldPlan[] = [];
  for (const f of [...desc.fields].sort((a, b) => a.number - b.number)) {
    if (f.presence === legacyRequired || ("delimitedEncoding" in f && f.delimitedEncoding)) {
      return null;
    }
    const base = {
      localName: f.localName,
      oneof: f.oneof?.localName,
      implicit: f.presence === implicitPresence && f.oneof === undefined,
      ownOnly: f.presence !== implicitPresence && f.oneof === undefined,
      valueTag: 0,
      message: undefined as DescMessage | undefined,
      mapValue: Kind.Scalar,
      scalar: ScalarType.INT32,
    };
    const structAsJson = (m: DescMessage) =>
      m.typeName === "google.protobuf.Struct" && desc.typeName !== "google.protobuf.Value";
    switch (f.fieldKind) {
      case "scalar":
      case "enum": {
        const scalar = scalarOf(f);
        out.push({ ...base, kind: Kind.Scalar, scalar, tag: tag(f.number, wireType(scalar)) });
        break;
      }
      case "message": {
        const kind = structAsJson(f.message)
          ? Kind.Struct
          : wrapperTypes.has(f.message.typeName) && f.oneof === undefined
            ? Kind.Wrapper
            : Kind.Message;
        out.push({ ...base, kind, message: f.message, tag: tag(f.number, 2) });
        break;
      }
      case "list": {
        if (f.listKind === "message") {
          const kind = structAsJson(f.message) ? Kind.StructList : Kind.MessageList;
          out.push({ ...base, kind, message: f.message, tag: tag(f.number, 2) });
        } else {
          const scalar = f.listKind === "enum" ? ScalarType.INT32 : f.scalar;
          out.push({
            ...base,
            kind: f.packed ? Kind.PackedList : Kind.List,
            scalar,
            tag: tag(f.number, f.packed ? 2 : wireType(scalar)),
            valueTag: tag(f.number, wireType(scalar)),
          });
        }
        break;
      }
      case "map": {
        if (f.mapKey !== ScalarType.STRING) return null;
        let mapValue = Kind.Scalar;
        let scalar = ScalarType.INT32;
        let message: DescMessage | undefined;
        if (f.mapKind === "message") {
          message = f.message;
          mapValue = structAsJson(f.message) ? Kind.Struct : Kind.Message;
        } else if (f.mapKind === "scalar") {
          scalar = f.scalar;
        }
        const valueTag = mapValue === Kind.Scalar ? tag(2, wireType(scalar)) : tag(2, 2);
        out.push({
          ...base,
          kind: Kind.Map,
          scalar,
          message,
          mapValue,
          valueTag,
          tag: tag(f.number, 2),
        });
        break;
      }
    }
  }
  return out;
}

function scalarOf(f: DescField): ScalarType {
  return f.fieldKind === "scalar" ? f.scalar : ScalarType.INT32;
}

function tag(no: number, wire: number): number {
  return ((no << 3) | wire) >>> 0;
}

/** Thrown to hand a message to `toBinary`. */
const unsupported = new Error("not covered by encodeBinary");

// The buffer every encoding writes into; its result is a copy of the written part.
const initialBytes = 64 * 1024;
let buf = new Uint8Array(initialBytes);
let view = new DataView(buf.buffer);
let pos = 0;
const textEncoder = new TextEncoder();
/** A buffer grown past this goes back to the initial size after the encoding. */
const keepBytes = 1024 * 1024;

function reserve(n: number): void {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, pos));
  buf = next;
  view = new DataView(buf.buffer);
}

function varint32(v: number): void {
  reserve(5);
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
}

function varint64(lo: number, hi: number): void {
  reserve(10);
  // As protobuf-es's varint64write.
  for (let i = 0; i < 28; i += 7) {
    const shift = lo >>> i;
    const more = !(shift >>> 7 === 0 && hi === 0);
    buf[pos++] = (more ? shift | 0x80 : shift) & 0xff;
    if (!more) return;
  }
  const splitBits = ((lo >>> 28) & 0x0f) | ((hi & 0x07) << 4);
  const hasMore = !(hi >> 3 === 0);
  buf[pos++] = (hasMore ? splitBits | 0x80 : splitBits) & 0xff;
  if (!hasMore) return;
  for (let i = 3; i < 31; i += 7) {
    const shift = hi >>> i;
    const more = !(shift >>> 7 === 0);
    buf[pos++] = (more ? shift | 0x80 : shift) & 0xff;
    if (!more) return;
  }
  buf[pos++] = (hi >>> 31) & 0x01;
}

function int32Range(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) {
    throw unsupported;
  }
  return v;
}

function int32(v: unknown): void {
  const n = int32Range(v);
  if (n >= 0) varint32(n);
  else varint64(n, -1);
}

function uint32(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v > 0xffffffff || v < 0) throw unsupported;
  return v;
}

function string(v: unknown): void {
  if (typeof v !== "string") throw unsupported;
  const n = v.length;
  if (n < 128) {
    reserve(n + 1);
    const start = pos;
    let i = 0;
    for (; i < n; i++) {
      const c = v.charCodeAt(i);
      if (c > 0x7f) break;
      buf[start + 1 + i] = c;
    }
    if (i === n) {
      buf[start] = n;
      pos = start + 1 + n;
      return;
    }
  }
  bytes(textEncoder.encode(v));
}

function bytes(v: Uint8Array): void {
  varint32(v.length);
  reserve(v.length);
  buf.set(v, pos);
  pos += v.length;
}

/** Writes a scalar's value (its tag is written already). */
function scalar(type: ScalarType, v: unknown): void {
  switch (type) {
    case ScalarType.STRING:
      string(v);
      return;
    case ScalarType.BOOL:
      if (typeof v !== "boolean") throw unsupported;
      reserve(1);
      buf[pos++] = v ? 1 : 0;
      return;
    case ScalarType.INT32:
      int32(v);
      return;
    case ScalarType.UINT32:
      varint32(uint32(v));
      return;
    case ScalarType.DOUBLE:
      if (typeof v !== "number") throw unsupported;
      reserve(8);
      view.setFloat64(pos, v, true);
      pos += 8;
      return;
    case ScalarType.BYTES:
      if (!(v instanceof Uint8Array)) throw unsupported;
      bytes(v);
      return;
    case ScalarType.FLOAT:
      if (typeof v !== "number" || (Number.isFinite(v) && Math.abs(v) > 3.4028234663852886e38)) {
        throw unsupported;
      }
      reserve(4);
      view.setFloat32(pos, v, true);
      pos += 4;
      return;
    case ScalarType.SINT32:
      int32Range(v);
      varint32((((v as number) << 1) ^ ((v as number) >> 31)) >>> 0);
      return;
    case ScalarType.FIXED32:
      reserve(4);
      view.setUint32(pos, uint32(v), true);
      pos += 4;
      return;
    case ScalarType.SFIXED32:
      reserve(4);
      view.setInt32(pos, int32Range(v), true);
      pos += 4;
      return;
    case ScalarType.INT64: {
      const tc = protoInt64.enc(int64(v));
      varint64(tc.lo, tc.hi);
      return;
    }
    case ScalarType.UINT64: {
      const tc = protoInt64.uEnc(int64(v));
      varint64(tc.lo, tc.hi);
      return;
    }
    case ScalarType.SINT64: {
      const tc = protoInt64.enc(int64(v));
      const sign = tc.hi >> 31;
      varint64((tc.lo << 1) ^ sign, ((tc.hi << 1) | (tc.lo >>> 31)) ^ sign);
      return;
    }
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64: {
      const tc = type === ScalarType.FIXED64 ? protoInt64.uEnc(int64(v)) : protoInt64.enc(int64(v));
      reserve(8);
      view.setInt32(pos, tc.lo, true);
      view.setInt32(pos + 4, tc.hi, true);
      pos += 8;
      return;
    }
  }
}

/** A 64-bit value as protobuf-es keeps it: bigint, or string with `jstype = JS_STRING`. */
function int64(v: unknown): bigint | string {
  if (typeof v !== "bigint" && typeof v !== "string") throw unsupported;
  return v;
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

/** Starts a length-delimited part; `end(start)` writes its length in front. */
function begin(): number {
  reserve(1);
  return ++pos;
}

function end(start: number): void {
  const len = pos - start;
  if (len < 0x80) {
    buf[start - 1] = len;
    return;
  }
  let extra = 0;
  for (let v = len >>> 7; v > 0; v >>>= 7) extra++;
  reserve(extra);
  buf.copyWithin(start + extra, start, pos);
  pos += extra;
  const after = pos;
  pos = start - 1;
  varint32(len);
  pos = after;
}

function nested(desc: DescMessage, message: unknown): void {
  const start = begin();
  fields(desc, message);
  end(start);
}

function fields(desc: DescMessage, message: unknown): void {
  const plan = planOf(desc);
  if (plan === null || typeof message !== "object" || message === null) throw unsupported;
  const m = message as Record<string, unknown>;
  for (let i = 0; i < plan.length; i++) {
    const f = plan[i]!;
    // The same presence read as in json-encoder.ts, kept inline on purpose: one helper
    // shared by both encoders' plan shapes made encodeJson about 2× slower (polymorphic reads).
    let v: unknown;
    if (f.oneof !== undefined) {
      const group = m[f.oneof] as { case: string | undefined; value?: unknown } | undefined;
      if (group === undefined) throw unsupported;
      if (group.case !== f.localName) continue;
      v = group.value;
    } else {
      v = m[f.localName];
      if (v === undefined) {
        // An implicit field is never undefined in a message toBinary accepts.
        if (f.implicit) throw unsupported;
        continue;
      }
      if (f.ownOnly && !Object.hasOwn(m, f.localName)) continue;
    }
    switch (f.kind) {
      case Kind.Scalar:
        if (f.implicit && isZero(f.scalar, v)) continue;
        varint32(f.tag);
        scalar(f.scalar, v);
        break;
      case Kind.Message:
        varint32(f.tag);
        nested(f.message!, v);
        break;
      case Kind.Struct: {
        varint32(f.tag);
        const start = begin();
        struct(v);
        end(start);
        break;
      }
      case Kind.Wrapper:
        varint32(f.tag);
        nested(f.message!, { value: v });
        break;
      case Kind.List:
        if (!Array.isArray(v)) throw unsupported;
        for (const item of v) {
          varint32(f.valueTag);
          scalar(f.scalar, item);
        }
        break;
      case Kind.PackedList: {
        if (!Array.isArray(v)) throw unsupported;
        if (v.length === 0) continue;
        varint32(f.tag);
        const start = begin();
        for (const item of v) scalar(f.scalar, item);
        end(start);
        break;
      }
      case Kind.MessageList:
        if (!Array.isArray(v)) throw unsupported;
        for (const item of v) {
          varint32(f.tag);
          nested(f.message!, item);
        }
        break;
      case Kind.StructList:
        if (!Array.isArray(v)) throw unsupported;
        for (const item of v) {
          varint32(f.tag);
          const start = begin();
          struct(item);
          end(start);
        }
        break;
      case Kind.Map:
        if (typeof v !== "object" || v === null) throw unsupported;
        for (const key of Object.keys(v)) {
          const value = (v as Record<string, unknown>)[key];
          varint32(f.tag);
          const start = begin();
          varint32(0x0a);
          string(key);
          varint32(f.valueTag);
          if (f.mapValue === Kind.Scalar) scalar(f.scalar, value);
          else if (f.mapValue === Kind.Message) nested(f.message!, value);
          else {
            const inner = begin();
            struct(value);
            end(inner);
          }
          end(start);
        }
        break;
    }
  }
  const unknown = m.$unknown as { no: number; wireType: number; data: Uint8Array }[] | undefined;
  if (unknown !== undefined) {
    for (const u of unknown) {
      varint32(tag(u.no, u.wireType));
      reserve(u.data.length);
      buf.set(u.data, pos);
      pos += u.data.length;
    }
  }
}

/** A JsonObject as google.protobuf.Struct (map<string, Value> fields = 1). */
function struct(json: unknown): void {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw unsupported;
  for (const key of Object.keys(json)) {
    varint32(0x0a);
    const entry = begin();
    varint32(0x0a);
    string(key);
    varint32(0x12);
    const value = begin();
    jsonValue((json as Record<string, unknown>)[key]);
    end(value);
    end(entry);
  }
}

/** A JsonValue as google.protobuf.Value's fields. */
function jsonValue(v: unknown): void {
  switch (typeof v) {
    case "number":
      reserve(9);
      buf[pos++] = 0x11;
      view.setFloat64(pos, v, true);
      pos += 8;
      return;
    case "string":
      varint32(0x1a);
      string(v);
      return;
    case "boolean":
      reserve(2);
      buf[pos++] = 0x20;
      buf[pos++] = v ? 1 : 0;
      return;
    case "undefined":
      return;
    case "object": {
      if (v === null) {
        reserve(2);
        buf[pos++] = 0x08;
        buf[pos++] = 0;
        return;
      }
      if (Array.isArray(v)) {
        varint32(0x32);
        const list = begin();
        for (const item of v) {
          varint32(0x0a);
          const value = begin();
          jsonValue(item);
          end(value);
        }
        end(list);
        return;
      }
      varint32(0x2a);
      const start = begin();
      struct(v);
      end(start);
      return;
    }
    default:
      throw unsupported;
  }
}

let fallbacks = 0;

/** How many encodings were left to `toBinary` in this process (for tests). */
export function encodeBinaryFallbacks(): number {
  return fallbacks;
}

/** `toBinary(schema, message)`: the same bytes, written without reflection. */
export function encodeBinary(schema: DescMessage, message: Message): Uint8Array<ArrayBuffer> {
  pos = 0;
  try {
    fields(schema, message);
  } catch {
    // Something this does not cover: toBinary encodes it, or rejects it with its own error.
    pos = 0;
    fallbacks++;
    return toBinary(schema, message) as Uint8Array<ArrayBuffer>;
  }
  const out = buf.slice(0, pos);
  if (buf.length > keepBytes) {
    // One large message does not keep its buffer alive.
    buf = new Uint8Array(initialBytes);
    view = new DataView(buf.buffer);
  }
  return out;
}
