/**
 * Token buckets shared by every replica: one row per bucket, refilled and
 * taken from by one statement, so N gateways (or executors) together admit
 * what one bucket allows, not N times it (ADR-013). The row also counts what
 * it admitted and refused, which is a tenant's request usage across the mesh.
 *
 * The database's clock refills the bucket (`statement_timestamp()`), so
 * replicas with skewed clocks agree.
 *
 * @example
 * const { admitted, retryAfterMs } = await store.buckets.take("requests:acme", { rate: 100, burst: 200 });
 */
import type { Db } from "./db.js";

export interface BucketShape {
  /** Tokens added per second. */
  rate: number;
  /** Most tokens the bucket holds (the largest burst). */
  burst: number;
}

export interface BucketTake {
  admitted: boolean;
  /** Tokens left after this take. */
  tokens: number;
  /** When refused: how long until one token is back. 0 when admitted. */
  retryAfterMs: number;
}

export interface BucketCounts {
  admitted: number;
  refused: number;
}

// The refill, written once: tokens now, capped at the burst (?1 rate, ?2 burst).
const refilled = `least(:burst, b.tokens + greatest(0, extract(epoch from statement_timestamp() - b.refilled_at)) * :rate)`;

const takeSql = `insert into rate_buckets as b (key, tokens, refilled_at, admitted, refused, last_admitted)
  values (:key, :burst - 1, statement_timestamp(), 1, 0, true)
  on conflict (key) do update set
    tokens = ${refilled} - case when ${refilled} >= 1 then 1 else 0 end,
    refilled_at = greatest(b.refilled_at, statement_timestamp()),
    admitted = b.admitted + case when ${refilled} >= 1 then 1 else 0 end,
    refused = b.refused + case when ${refilled} >= 1 then 0 else 1 end,
    last_admitted = ${refilled} >= 1
  returning tokens, last_admitted`;

// Named placeholders become positional ones in the order they appear.
const takeParams = takeSql.match(/:(key|rate|burst)\b/g)?.map((m) => m.slice(1)) ?? [];
const takeText = takeSql.replace(/:(key|rate|burst)\b/g, (_m, name: string) =>
  name === "key" ? "?" : "?::float8",
);

export class RateBucketRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Takes one token from the bucket `key` (created full on first use). */
  async take(key: string, shape: BucketShape): Promise<BucketTake> {
    const values: Record<string, unknown> = { key, rate: shape.rate, burst: shape.burst };
    const [row] = await this.db.rows<{ tokens: number; last_admitted: boolean }>(
      takeText,
      takeParams.map((name) => values[name]),
    );
    const tokens = Number(row?.tokens ?? 0);
    const admitted = row?.last_admitted === true;
    return {
      admitted,
      tokens,
      retryAfterMs: admitted ? 0 : Math.ceil(((1 - tokens) * 1000) / shape.rate),
    };
  }

  /** What the bucket admitted and refused so far (zeros for a bucket never used). */
  async counts(key: string): Promise<BucketCounts> {
    const [row] = await this.db.rows<{ admitted: string; refused: string }>(
      "select admitted, refused from rate_buckets where key = ?",
      [key],
    );
    return { admitted: Number(row?.admitted ?? 0), refused: Number(row?.refused ?? 0) };
  }
}
