/**
 * How much work a request body asks for, measured on its bytes before anything
 * is decoded: how deep its values nest, the longest list (or map) in it, and
 * how many values it holds in all. Decoding a `google.protobuf.Struct` costs
 * per value, and every hop decodes and encodes it again, so these, not the byte
 * count alone, bound what a request costs. Each scan stops at the first limit
 * it passes, so it costs no more than the bytes it reads, and never recurses
 * deeper than the depth limit.
 *
 * A body that does not parse is not judged here: the strict decoder answers it.
 *
 * @example
 * const problem = jsonShapeProblem(body, { maxDepth: 32, maxListLength: 10_000, maxValues: 100_000 });
 * if (problem) throw new MeshError(Code.InvalidArgument, problem);
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";

/** Limits on the shape of one request message. */
export interface ShapeLimits {
  /** Deepest nesting of objects and lists (the request itself is level 1). */
  maxDepth: number;
  /** Most elements in one list, or entries in one map or object. */
  maxListLength: number;
  /** Most values in the whole message (elements, entries and fields). */
  maxValues: number;
}

const depthProblem = (limits: ShapeLimits) =>
  `request nests deeper than ${limits.maxDepth} levels, the most this tenant may send`;
const listProblem = (limits: ShapeLimits) =>
  `request has a list or object of more than ${limits.maxListLength} elements, the most this tenant may send`;
const valuesProblem = (limits: ShapeLimits) =>
  `request holds more than ${limits.maxValues} values, the most this tenant may send`;

enum Byte {
  Quote = 0x22,
  Backslash = 0x5c,
  Comma = 0x2c,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
  OpenBracket = 0x5b,
  CloseBracket = 0x5d,
}

/** The first limit a JSON body passes, or undefined. */
export function jsonShapeProblem(bytes: Uint8Array, limits: ShapeLimits): string | undefined {
  // Elements of each open container, counted by its commas (strings skipped).
  const counts: number[] = [];
  let values = 1;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    if (inString) {
      if (b === Byte.Backslash) i++;
      else if (b === Byte.Quote) inString = false;
      continue;
    }
    switch (b) {
      case Byte.Quote:
        inString = true;
        break;
      case Byte.OpenBrace:
      case Byte.OpenBracket:
        if (counts.length >= limits.maxDepth) return depthProblem(limits);
        counts.push(1);
        break;
      case Byte.CloseBrace:
      case Byte.CloseBracket:
        counts.pop();
        break;
      case Byte.Comma: {
        const n = counts.length;
        if (n === 0) break;
        const count = (counts[n - 1] as number) + 1;
        if (count > limits.maxListLength) return listProblem(limits);
        counts[n - 1] = count;
        if (++values > limits.maxValues) return valuesProblem(limits);
        break;
      }
    }
  }
  return undefined;
}

/** Messages that are one JSON value, not a level of their own. */
const transparent = new Set(["google.protobuf.Value"]);

/** The first limit a binary message of type `desc` passes, or undefined. */
export function protoShapeProblem(
  desc: DescMessage,
  bytes: Uint8Array,
  limits: ShapeLimits,
): string | undefined {
  const state = { values: 0 };
  try {
    return walk(desc, bytes, 0, bytes.length, 1, limits, state);
  } catch (err) {
    if (err === malformed) return undefined;
    throw err;
  }
}

const malformed = new Error("malformed");

/** What the walk needs to know of a field: whether it repeats, and the message inside it. */
interface FieldInfo {
  repeated: boolean;
  /** The message type of the field (of a map's value), if it is one. */
  message: DescMessage | undefined;
  map: boolean;
}

const fieldInfos = new WeakMap<DescMessage, Map<number, FieldInfo | null>>();

function fieldInfo(desc: DescMessage, number: number): FieldInfo | undefined {
  let byNumber = fieldInfos.get(desc);
  if (!byNumber) {
    byNumber = new Map();
    fieldInfos.set(desc, byNumber);
  }
  let info = byNumber.get(number);
  if (info === undefined) {
    const field: DescField | undefined = desc.fields.find((f) => f.number === number);
    info = null;
    if (field?.fieldKind === "message")
      info = { repeated: false, message: field.message, map: false };
    else if (field?.fieldKind === "list") {
      const message = field.listKind === "message" ? field.message : undefined;
      info = { repeated: true, message, map: false };
    } else if (field?.fieldKind === "map") {
      const message = field.mapKind === "message" ? field.message : undefined;
      info = { repeated: true, message, map: true };
    }
    byNumber.set(number, info);
  }
  return info ?? undefined;
}

/**
 * Calls `visit` with each field of the message in `bytes[start, end)`: its
 * number, wire type and the range of its value. Stops at the first problem.
 */
function eachField(
  bytes: Uint8Array,
  start: number,
  end: number,
  visit: (number: number, wireType: number, from: number, to: number) => string | undefined,
): string | undefined {
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = varint(bytes, pos, end);
    const wireType = tag % 8;
    let from = afterTag;
    switch (wireType) {
      case 0:
        pos = varint(bytes, afterTag, end)[1];
        break;
      case 1:
        pos = afterTag + 8;
        break;
      case 5:
        pos = afterTag + 4;
        break;
      case 2: {
        const [length, afterLength] = varint(bytes, afterTag, end);
        from = afterLength;
        pos = afterLength + length;
        break;
      }
      default:
        throw malformed; // groups and invalid wire types: the decoder's to refuse
    }
    if (pos > end) throw malformed;
    const problem = visit(Math.floor(tag / 8), wireType, from, pos);
    if (problem) return problem;
  }
  return undefined;
}

function walk(
  desc: DescMessage,
  bytes: Uint8Array,
  start: number,
  end: number,
  depth: number,
  limits: ShapeLimits,
  state: { values: number },
): string | undefined {
  // Elements of each repeated field and entries of each map seen so far.
  let counts: Map<number, number> | undefined;
  return eachField(bytes, start, end, (number, wireType, from, to) => {
    const info = fieldInfo(desc, number);
    if (info?.repeated) {
      if (++state.values > limits.maxValues) return valuesProblem(limits);
      counts ??= new Map();
      const count = (counts.get(number) ?? 0) + 1;
      if (count > limits.maxListLength) return listProblem(limits);
      counts.set(number, count);
    }
    if (wireType !== 2 || !info?.message) return undefined;
    return info.map
      ? walkMapEntry(info.message, bytes, from, to, depth, limits, state)
      : walkMessage(info.message, bytes, from, to, depth, limits, state);
  });
}

function walkMessage(
  desc: DescMessage,
  bytes: Uint8Array,
  start: number,
  end: number,
  depth: number,
  limits: ShapeLimits,
  state: { values: number },
): string | undefined {
  const level = transparent.has(desc.typeName) ? depth : depth + 1;
  if (level > limits.maxDepth) return depthProblem(limits);
  return walk(desc, bytes, start, end, level, limits, state);
}

/** A map entry: key (1) and value (2); only a message value is walked. */
function walkMapEntry(
  value: DescMessage,
  bytes: Uint8Array,
  start: number,
  end: number,
  depth: number,
  limits: ShapeLimits,
  state: { values: number },
): string | undefined {
  return eachField(bytes, start, end, (number, wireType, from, to) =>
    number === 2 && wireType === 2
      ? walkMessage(value, bytes, from, to, depth, limits, state)
      : undefined,
  );
}

/** A varint at `pos` (at most 64 bits, as a number) and the position after it. */
function varint(bytes: Uint8Array, pos: number, end: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (pos >= end) throw malformed;
    const b = bytes[pos++] as number;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, pos];
    scale *= 128;
  }
  throw malformed;
}
