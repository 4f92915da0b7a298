/**
 * Feature hashing of goals into a fixed-dimension vector, so similar past goals
 * can be found by cosine similarity without any model download. Words and word
 * bigrams of the text (sub-linear term frequency) and `key=value` categorical
 * features are hashed to signed coordinates; the vector is L2-normalised, so
 * cosine similarity is a dot product.
 *
 * The hashing is part of persisted data (experience vectors): `FEATURE_VERSION`
 * names it, and any change to tokenising or hashing needs a new version.
 *
 * @example
 * const a = contextVector({ tenantId: "t", goalKind: "summarize", sizeClass: "s", text: "Summarize the Q3 report" });
 * const b = contextVector({ tenantId: "t", goalKind: "summarize", sizeClass: "s", text: "summarize the Q4 report" });
 * cosineSimilarity(a, b) // → ~0.7
 */
import type { DecisionContext } from "./context-bucket.js";
import { bucketOf } from "./context-bucket.js";
import { hash32 } from "./murmur-hash.js";

/** Names the hashing scheme of persisted vectors. */
export const FEATURE_VERSION = "fh1-256";
/** Default dimension of feature vectors. */
export const FEATURE_DIM = 256;

export interface FeatureHashOptions {
  /** Vector dimension; default 256. */
  dim?: number;
  /** Weight of each categorical feature relative to one text token; default 2. */
  categoricalWeight?: number;
  /** Include word bigrams; default true. */
  bigrams?: boolean;
}

/** Feature keys that identify one goal rather than describe it; never hashed. */
const identityKeys = new Set(["goal_id", "goalId", "request_id", "trace_id"]);

/** Lower-cased words (letters and digits, any script). */
export function tokenize(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** The hashed, L2-normalised vector of a text and categorical features. */
export function featureVector(
  text: string,
  features: Readonly<Record<string, string>> = {},
  options: FeatureHashOptions = {},
): number[] {
  const dim = options.dim ?? FEATURE_DIM;
  const catWeight = options.categoricalWeight ?? 2;
  const counts = new Map<string, number>();
  const words = tokenize(text);
  for (let i = 0; i < words.length; i++) {
    const w = `w:${words[i]}`;
    counts.set(w, (counts.get(w) ?? 0) + 1);
    if (options.bigrams !== false && i > 0) {
      const b = `b:${words[i - 1]} ${words[i]}`;
      counts.set(b, (counts.get(b) ?? 0) + 1);
    }
  }
  const v = new Float64Array(dim);
  for (const [token, tf] of counts) add(v, token, 1 + Math.log(tf));
  for (const key of Object.keys(features).sort()) {
    if (identityKeys.has(key)) continue;
    add(v, `c:${key}=${features[key]}`, catWeight);
  }
  let norm = 0;
  for (let i = 0; i < dim; i++) norm += v[i]! * v[i]!;
  norm = Math.sqrt(norm);
  const out = new Array<number>(dim);
  for (let i = 0; i < dim; i++) out[i] = norm > 0 ? v[i]! / norm : 0;
  return out;
}

function add(v: Float64Array, token: string, weight: number): void {
  const h = hash32(token);
  // Bit 31 gives the sign, the rest the index: collisions cancel in expectation.
  v[(h & 0x7fffffff) % v.length]! += h & 0x80000000 ? -weight : weight;
}

/**
 * The vector of a decision context: its text plus goal kind, size class and
 * extra features. The tenant is left out; callers search within a tenant.
 */
export function contextVector(ctx: DecisionContext, options?: FeatureHashOptions): number[] {
  const b = bucketOf(ctx);
  return featureVector(
    ctx.text ?? "",
    { ...ctx.features, "@kind": b.goalKind, "@size": b.sizeClass },
    options,
  );
}

/** Cosine similarity of two vectors (0 when either is all zeros or lengths differ). */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

/** An item with its similarity to a query. */
export interface Neighbour<T> {
  item: T;
  similarity: number;
}

/** The k items most similar to `query` (at least `minSimilarity`), most similar first. */
export function nearest<T extends { vector: ArrayLike<number> }>(
  query: ArrayLike<number>,
  items: Iterable<T>,
  k: number,
  minSimilarity = Number.NEGATIVE_INFINITY,
): Neighbour<T>[] {
  if (k <= 0) return [];
  const found: Neighbour<T>[] = [];
  for (const item of items) {
    const similarity = cosineSimilarity(query, item.vector);
    if (similarity < minSimilarity) continue;
    found.push({ item, similarity });
  }
  found.sort((x, y) => y.similarity - x.similarity);
  return found.length > k ? found.slice(0, k) : found;
}
