/**
 * `input.request`: the request message as the policy sees it, built
 * generically from its protobuf-es descriptor (a new RPC needs no policy
 * plumbing) and bounded, so no request can make the input large:
 *
 * - wire (snake_case) field names; set fields only (proto3 defaults left out);
 * - strings cut to `maxString` characters, lists and maps to `maxItems`
 *   entries, messages followed `maxDepth` levels down, at most `maxLeaves`
 *   values in all; `truncated` says when a bound cut something;
 * - enums by value name (`GOAL_STATUS_RUNNING`), 64-bit integers as numbers
 *   (as strings beyond 2^53), Timestamp and Duration as milliseconds;
 * - left out: bytes, free-form `google.protobuf.Struct`/`Value`/`Any` (goal and
 *   step inputs are user data, not policy facts), fields marked
 *   `(agentmesh.v1.sensitive)`, and fields whose name looks secret (`token`,
 *   `secret`, `password`, `api_key`, ...).
 *
 * @example
 * const { value, truncated } = requestView(SubmitGoalRequestSchema, request);
 * // value: { tenant_id: "acme", kind: "summarize", priority: 3, labels: { team: "a" } }
 */
import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { isSensitive } from "../proto/sensitive-fields.js";

export interface RequestViewLimits {
  /** Characters kept of a string. Default 256. */
  maxString: number;
  /** Entries kept of a list or map. Default 64. */
  maxItems: number;
  /** Message levels followed below the request. Default 4 (PutPlaybook's step fields). */
  maxDepth: number;
  /** Values (strings, numbers, booleans) in all. Default 512. */
  maxLeaves: number;
}

export const defaultRequestViewLimits: RequestViewLimits = Object.freeze({
  maxString: 256,
  maxItems: 64,
  maxDepth: 4,
  maxLeaves: 512,
});

export type JsonLike = string | number | boolean | JsonLike[] | { [key: string]: JsonLike };

export interface RequestView {
  value: { [key: string]: JsonLike };
  /** True when a bound cut something (the view is then not cached by the decision cache). */
  truncated: boolean;
}

/** Field names that never reach the policy (as the decision log's redaction). */
const secretName =
  /^(password|secret|token|api_?key|authorization|private_?key|key|cookie|credentials?|secret_hash)$/i;

/** Well-known message types left out: free-form user data. */
const opaque = new Set([
  "google.protobuf.Struct",
  "google.protobuf.Value",
  "google.protobuf.ListValue",
  "google.protobuf.Any",
]);

class Budget {
  leaves: number;
  truncated = false;
  constructor(readonly limits: RequestViewLimits) {
    this.leaves = limits.maxLeaves;
  }
  take(): boolean {
    if (this.leaves <= 0) {
      this.truncated = true;
      return false;
    }
    this.leaves--;
    return true;
  }
}

/** The bounded view of `message` (of type `schema`). */
export function requestView(
  schema: DescMessage,
  message: Message | undefined,
  limits: RequestViewLimits = defaultRequestViewLimits,
): RequestView {
  const budget = new Budget(limits);
  const value = message === undefined ? {} : viewMessage(schema, message, 0, budget);
  return { value, truncated: budget.truncated };
}

const sensitiveFields = new WeakMap<DescField, boolean>();
/** `isSensitive`, remembered per field (this runs on every policy decision). */
function sensitive(field: DescField): boolean {
  let s = sensitiveFields.get(field);
  if (s === undefined) {
    s = isSensitive(field);
    sensitiveFields.set(field, s);
  }
  return s;
}

function viewMessage(
  schema: DescMessage,
  message: Message,
  depth: number,
  budget: Budget,
): { [key: string]: JsonLike } {
  const out: { [key: string]: JsonLike } = {};
  const record = message as unknown as Record<string, unknown>;
  for (const field of schema.fields) {
    if (secretName.test(field.name) || sensitive(field)) continue;
    let raw: unknown;
    if (field.oneof !== undefined) {
      const chosen = record[field.oneof.localName] as
        | { case?: string; value?: unknown }
        | undefined;
      if (chosen?.case !== field.localName) continue;
      raw = chosen.value;
    } else {
      raw = record[field.localName];
    }
    const v = viewField(field, raw, depth, budget);
    if (v !== undefined) out[field.name] = v;
  }
  return out;
}

function viewField(
  field: DescField,
  raw: unknown,
  depth: number,
  budget: Budget,
): JsonLike | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return viewScalar(raw, budget, field.oneof !== undefined);
    case "enum": {
      if (typeof raw !== "number" || (raw === 0 && field.oneof === undefined)) return undefined;
      if (!budget.take()) return undefined;
      return field.enum.values.find((v) => v.number === raw)?.name ?? raw;
    }
    case "message": {
      if (raw === undefined || raw === null) return undefined;
      return viewNested(field.message, raw, depth, budget);
    }
    case "list": {
      if (!Array.isArray(raw) || raw.length === 0) return undefined;
      const items: JsonLike[] = [];
      const n = Math.min(raw.length, budget.limits.maxItems);
      if (raw.length > n) budget.truncated = true;
      for (let i = 0; i < n; i++) {
        const item =
          field.listKind === "message"
            ? viewNested(field.message, raw[i], depth, budget)
            : field.listKind === "enum"
              ? enumName(field.enum.values, raw[i], budget)
              : viewScalar(raw[i], budget, true);
        if (item !== undefined) items.push(item);
      }
      return items.length > 0 ? items : undefined;
    }
    case "map": {
      if (typeof raw !== "object" || raw === null) return undefined;
      const entries = Object.entries(raw as Record<string, unknown>);
      if (entries.length === 0) return undefined;
      const out: { [key: string]: JsonLike } = {};
      const n = Math.min(entries.length, budget.limits.maxItems);
      if (entries.length > n) budget.truncated = true;
      for (let i = 0; i < n; i++) {
        const [k, v] = entries[i]!;
        if (secretName.test(k)) continue;
        const item =
          field.mapKind === "message"
            ? viewNested(field.message, v, depth, budget)
            : field.mapKind === "enum"
              ? enumName(field.enum.values, v, budget)
              : viewScalar(v, budget, true);
        if (item !== undefined) out[cut(k, budget)] = item;
      }
      return out;
    }
  }
}

function viewNested(
  schema: DescMessage,
  raw: unknown,
  depth: number,
  budget: Budget,
): JsonLike | undefined {
  if (typeof raw !== "object" || raw === null || opaque.has(schema.typeName)) return undefined;
  const r = raw as Record<string, unknown>;
  if (
    schema.typeName === "google.protobuf.Timestamp" ||
    schema.typeName === "google.protobuf.Duration"
  ) {
    if (!budget.take()) return undefined;
    return Number(r.seconds ?? 0) * 1000 + Math.round(Number(r.nanos ?? 0) / 1e6);
  }
  if (depth >= budget.limits.maxDepth) {
    budget.truncated = true;
    return undefined;
  }
  return viewMessage(schema, raw as Message, depth + 1, budget);
}

function enumName(
  values: readonly { number: number; name: string }[],
  raw: unknown,
  budget: Budget,
): JsonLike | undefined {
  if (typeof raw !== "number" || !budget.take()) return undefined;
  return values.find((v) => v.number === raw)?.name ?? raw;
}

/** A scalar; proto3 defaults (empty, 0, false) are left out unless `keepDefault`. */
function viewScalar(raw: unknown, budget: Budget, keepDefault: boolean): JsonLike | undefined {
  switch (typeof raw) {
    case "string":
      if (raw === "" && !keepDefault) return undefined;
      return budget.take() ? cut(raw, budget) : undefined;
    case "number":
      if (raw === 0 && !keepDefault) return undefined;
      return budget.take() ? raw : undefined;
    case "boolean":
      if (!raw && !keepDefault) return undefined;
      return budget.take() ? raw : undefined;
    case "bigint": {
      if (raw === 0n && !keepDefault) return undefined;
      if (!budget.take()) return undefined;
      const n = Number(raw);
      return Number.isSafeInteger(n) ? n : raw.toString();
    }
    default:
      return undefined; // bytes (Uint8Array) and anything unexpected
  }
}

function cut(s: string, budget: Budget): string {
  if (s.length <= budget.limits.maxString) return s;
  budget.truncated = true;
  return s.slice(0, budget.limits.maxString);
}
