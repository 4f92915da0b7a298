/**
 * The one feature extractor of a goal, used by the contextual selector: a
 * goal's context is (tenant, kind, size bucket, input shape). Shape is what a
 * structured input looks like: for a JSON object the hash of its sorted
 * top-level keys, else "array", "text" or "empty". Values never matter, so two
 * goals with the same form share statistics however their contents differ.
 *
 * Hostile input is bounded: only the first `MAX_SHAPE_BYTES` characters are
 * parsed, and at most `MAX_SHAPE_KEYS` keys are hashed.
 *
 * @example
 * goalFeatures({ tenantId: "acme", goalKind: "extract", sizeClass: "", text: '{"url":"…","lang":"de"}' })
 * // → { tenant: "acme", kind: "extract", size: "s", shape: "obj-3f2a91c0" }
 * contextKey(f) // → "tenant=acme/kind=extract/size=s/shape=obj-3f2a91c0"
 */
import type { DecisionContext } from "./context-bucket.js";
import { sizeClassOf } from "./context-bucket.js";
import { hash32 } from "./murmur-hash.js";

/** Inputs longer than this are not parsed for their shape ("text"). */
export const MAX_SHAPE_BYTES = 64 * 1024;
/** Keys beyond this many do not enter the shape hash. */
export const MAX_SHAPE_KEYS = 64;

export interface GoalFeatures {
  tenant: string;
  kind: string;
  /** "s", "m" or "l" (see `sizeClassOf`), or the caller's size class. */
  size: string;
  /** "obj-<hash of sorted top-level keys>", "array", "text" or "empty". */
  shape: string;
}

/** The shape of a goal's input text. */
export function inputShape(text: string | undefined): string {
  const t = text?.trim() ?? "";
  if (t === "") return "empty";
  if (t.length > MAX_SHAPE_BYTES || (t[0] !== "{" && t[0] !== "[")) return "text";
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    return "text";
  }
  if (Array.isArray(parsed)) return "array";
  if (parsed === null || typeof parsed !== "object") return "text";
  const keys = Object.keys(parsed).sort().slice(0, MAX_SHAPE_KEYS);
  return `obj-${hash32(keys.join("\u0000")).toString(16).padStart(8, "0")}`;
}

/** The features of a decision context. */
export function goalFeatures(ctx: DecisionContext): GoalFeatures {
  return {
    tenant: ctx.tenantId,
    kind: ctx.goalKind,
    size: ctx.sizeClass || sizeClassOf(ctx.text),
    shape: inputShape(ctx.text),
  };
}

/** A readable, unambiguous key of the features (values URI-encoded). */
export function contextKey(f: GoalFeatures): string {
  const e = encodeURIComponent;
  return `tenant=${e(f.tenant)}/kind=${e(f.kind)}/size=${e(f.size)}/shape=${e(f.shape)}`;
}
