/**
 * Decision contexts and the buckets statistics are kept in. A bucket is the
 * triple (tenant, goal kind, size class), written as a readable key such as
 * `tenant=acme/kind=summarize/size=m` (the form `StrategyStats.bucket` shows).
 *
 * @example
 * bucketKey({ tenantId: "acme", goalKind: "summarize", sizeClass: "", text: "..." })
 * // → "tenant=acme/kind=summarize/size=s" (size derived from the text when unset)
 */

/**
 * What a strategy is chosen for. Structurally a subset of the generated
 * `agentmesh.v1.DecisionContext`, so a decoded message can be passed as is.
 */
export interface DecisionContext {
  tenantId: string;
  goalKind: string;
  /** "s", "m", "l", ...; derived from the text length when empty. */
  sizeClass: string;
  /** Free text of the goal, hashed into a feature vector for similarity. */
  text?: string;
  /** Extra categorical features. */
  features?: Readonly<Record<string, string>>;
}

/** The parts of a bucket key. */
export interface Bucket {
  tenantId: string;
  goalKind: string;
  sizeClass: string;
}

/** Text lengths (characters) below which a goal is "s", then "m"; longer is "l". */
const smallBelow = 280;
const mediumBelow = 4000;

/** Size class of a goal text when the caller did not give one. */
export function sizeClassOf(text: string | undefined): string {
  const n = text?.length ?? 0;
  if (n < smallBelow) return "s";
  if (n < mediumBelow) return "m";
  return "l";
}

/** The bucket of a context. */
export function bucketOf(ctx: DecisionContext): Bucket {
  return {
    tenantId: ctx.tenantId,
    goalKind: ctx.goalKind,
    sizeClass: ctx.sizeClass || sizeClassOf(ctx.text),
  };
}

/** The bucket key of a context (values URI-encoded so `/` and `=` stay unambiguous). */
export function bucketKey(ctx: DecisionContext | Bucket): string {
  // A Bucket is a DecisionContext without text: an empty size class then reads as "s".
  const b = bucketOf(ctx as DecisionContext);
  return `tenant=${encodeURIComponent(b.tenantId)}/kind=${encodeURIComponent(b.goalKind)}/size=${encodeURIComponent(b.sizeClass)}`;
}

/** Parses a key made by `bucketKey`; undefined when it is not one. */
export function parseBucketKey(key: string): Bucket | undefined {
  const m = /^tenant=([^/]*)\/kind=([^/]*)\/size=([^/]*)$/.exec(key);
  if (!m) return undefined;
  try {
    return {
      tenantId: decodeURIComponent(m[1]!),
      goalKind: decodeURIComponent(m[2]!),
      sizeClass: decodeURIComponent(m[3]!),
    };
  } catch {
    return undefined;
  }
}
