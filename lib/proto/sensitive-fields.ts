/**
 * Sensitive fields as the contract declares them (`[(agentmesh.v1.sensitive)
 * = true]` in `proto/agentmesh/v1/`), found generically over descriptors so a
 * field marked in a `.proto` file is redacted everywhere without code here.
 *
 * @example
 * const paths = redactSensitive(GoalSchema, goal); // ["input", "steps[0].output"]
 */
import { create, type DescField, type DescMessage, getOption } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { sensitive } from "../../gen/agentmesh/v1/options_pb.js";

/** What a redacted `Value` or `Struct` field shows instead of its content. */
export const redactedText = "[redacted: sensitive]";

export function isSensitive(field: DescField): boolean {
  return getOption(field, sensitive) === true;
}

/** Every sensitive field reachable from `schema`, as `Message.field` names (for docs and tests). */
export function sensitiveFields(schema: DescMessage, seen = new Set<string>()): string[] {
  if (seen.has(schema.typeName)) return [];
  seen.add(schema.typeName);
  const out: string[] = [];
  for (const f of schema.fields) {
    if (isSensitive(f)) out.push(`${schema.typeName}.${f.name}`);
    if (f.message && !f.message.typeName.startsWith("google.protobuf.")) {
      out.push(...sensitiveFields(f.message, seen));
    }
  }
  return out;
}

type Obj = Record<string, unknown>;

/**
 * Replaces every set sensitive field of `message` (in place, nested messages
 * and oneofs included) with a redaction marker; returns the paths redacted.
 */
export function redactSensitive(schema: DescMessage, message: object, at = ""): string[] {
  const out: string[] = [];
  const m = message as Obj;
  for (const f of schema.fields) {
    const path = `${at}${at ? "." : ""}${f.localName}`;
    let holder: Obj = m;
    let key = f.localName;
    if (f.oneof) {
      const o = m[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (o?.case !== f.localName) continue;
      holder = o as Obj;
      key = "value";
    }
    const value = holder[key];
    if (value === undefined || value === null) continue;
    if (isSensitive(f)) {
      holder[key] = redacted(f);
      out.push(path);
      continue;
    }
    if (!f.message || f.message.typeName.startsWith("google.protobuf.")) continue;
    if (f.fieldKind === "list" && Array.isArray(value)) {
      value.forEach((v, i) => {
        out.push(...redactSensitive(f.message as DescMessage, v as object, `${path}[${i}]`));
      });
    } else if (f.fieldKind === "message") {
      out.push(...redactSensitive(f.message, value as object, path));
    }
  }
  return out;
}

/** Whether a Struct is what a redacted read showed in place of one (so it was sent back unread). */
export function isRedactedStruct(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && (value as Obj).redacted === redactedText;
}

function redacted(f: DescField): unknown {
  const type = f.message?.typeName;
  if (type === "google.protobuf.Value") {
    return create(ValueSchema, { kind: { case: "stringValue", value: redactedText } });
  }
  if (type === "google.protobuf.Struct") {
    // A Struct is a plain JSON object in protobuf-es.
    return { redacted: redactedText };
  }
  return f.fieldKind === "scalar" && f.scalar === 9 ? redactedText : undefined;
}

/** A place in a JSON document: object keys and array indices from the root. */
export type JsonPath = (string | number)[];

/**
 * Where the set sensitive fields of `schema` sit in `json`, the message's
 * protobuf JSON (as `toJson` writes it; proto field names are accepted too),
 * nested messages, lists and maps included. What the contract does not name
 * (unknown keys) is not sensitive.
 */
export function sensitiveJsonPaths(
  schema: DescMessage,
  json: unknown,
  at: JsonPath = [],
): JsonPath[] {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return [];
  const out: JsonPath[] = [];
  const m = json as Obj;
  for (const f of schema.fields) {
    const key = f.jsonName in m ? f.jsonName : f.name;
    const value = m[key];
    if (value === undefined || value === null) continue;
    if (isSensitive(f)) {
      out.push([...at, key]);
      continue;
    }
    const inner = f.message;
    if (!inner || inner.typeName.startsWith("google.protobuf.")) continue;
    if (f.fieldKind === "list" && Array.isArray(value)) {
      value.forEach((v, i) => {
        out.push(...sensitiveJsonPaths(inner, v, [...at, key, i]));
      });
    } else if (f.fieldKind === "map" && typeof value === "object") {
      for (const [k, v] of Object.entries(value as Obj))
        out.push(...sensitiveJsonPaths(inner, v, [...at, key, k]));
    } else if (f.fieldKind === "message") {
      out.push(...sensitiveJsonPaths(inner, value, [...at, key]));
    }
  }
  return out;
}
