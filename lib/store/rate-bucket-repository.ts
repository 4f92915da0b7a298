/**
 * Token buckets shared by every replica: one row per bucket, refilled and
 * taken from by one statement, so N gateways (or executors) together admit
 * what one bucket allows, not N times it (ADR-013). The row also counts what
 * it admitted and refused, which is a tenant's request usage across the mesh.
 *
 * The database's clock refills the bucket (`statement_timestamp()`), so
 * replicas with skewed clocks agree.
 *
 * A caller may take several tokens at once (`want`) and spend them locally:
 * the gateway takes 50 ms of its rate at a time, so a busy tenant costs each
 * replica about 20 statements a second however many requests it sends. The
 * table is UNLOGGED (migration 0007): a bucket is a few seconds of state, not
 * worth a WAL flush per request; after a database crash buckets start full
 * and the usage counts from zero.
 *
 * A caller that must not be refused, only delayed, reserves instead
 * (`reserve`): the executors' per-capability rate limits, where a step over
 * the limit is dispatched at its turn rather than failed.
 *
 * @example
 * const { granted, retryAfterMs } = await store.buckets.take("requests:acme", { rate: 100, burst: 200 });
 * const { reserved, waitMs } = await store.buckets.reserve("capability:acme:http.fetch", { rate: 5, burst: 5 }, 60_000);
 */
import type { Db } from "./db.js";

export interface BucketShape {
  /** Tokens added per second. */
  rate: number;
  /** Most tokens the bucket holds (the largest burst). */
  burst: number;
}

export interface BucketTake {
  /** Whether at least one token was granted. */
  admitted: boolean;
  /** Tokens granted: up to `want`, as many whole tokens as the bucket held. */
  granted: number;
  /** Tokens left after this take. */
  tokens: number;
  /** When refused: how long until one token is back. 0 when admitted. */
  retryAfterMs: number;
}

export interface BucketCounts {
  admitted: number;
  refused: number;
}

// The refill, written once: tokens now, capped at the burst.
const refilled = `least(:burst, b.tokens + greatest(0, extract(epoch from statement_timestamp() - b.refilled_at)) * :rate)`;
// Whole tokens granted: up to :want.
const granted = `least(:want, floor(${refilled}))`;

// `admitted` counts tokens granted; `last_granted` carries this take's grant to `returning`.
const takeSql = `insert into rate_buckets as b (key, tokens, refilled_at, admitted, refused, last_granted)
  values (:key, :burst - least(:want, floor(:burst)), statement_timestamp(), least(:want, floor(:burst)), 0, least(:want, floor(:burst)))
  on conflict (key) do update set
    tokens = ${refilled} - ${granted},
    refilled_at = greatest(b.refilled_at, statement_timestamp()),
    admitted = b.admitted + ${granted},
    refused = b.refused + case when ${granted} >= 1 then 0 else 1 end,
    last_granted = ${granted}
  returning tokens, last_granted`;

// A reservation: one token, taken even when the bucket holds less than one, down
// to :debt tokens below zero; the caller waits until its token has refilled.
// Refused (nothing taken) when that would be deeper than :debt.
const fits = `${refilled} - 1 >= -:debt`;
const reserveSql = `insert into rate_buckets as b (key, tokens, refilled_at, admitted, refused, last_granted)
  values (:key, :burst - 1, statement_timestamp(), 1, 0, 1)
  on conflict (key) do update set
    tokens = case when ${fits} then ${refilled} - 1 else ${refilled} end,
    refilled_at = greatest(b.refilled_at, statement_timestamp()),
    admitted = b.admitted + case when ${fits} then 1 else 0 end,
    refused = b.refused + case when ${fits} then 0 else 1 end,
    last_granted = case when ${fits} then 1 else 0 end
  returning tokens, last_granted`;

/** Named placeholders (`:key`, numbers as float8) as positional ones, in the order they appear. */
function positional(sql: string): { text: string; params: string[] } {
  const names = /:(key|rate|burst|want|debt)\b/g;
  return {
    text: sql.replace(names, (_m, name: string) => (name === "key" ? "?" : "?::float8")),
    params: sql.match(names)?.map((m) => m.slice(1)) ?? [],
  };
}

const take = positional(takeSql);
const reserve = positional(reserveSql);

export interface BucketReservation {
  /** Whether a token was reserved (false: the wait would have been longer than allowed). */
  reserved: boolean;
  /** How long until the reserved token is there: 0 when it is now. */
  waitMs: number;
}

export class RateBucketRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /**
   * Takes up to `want` (default 1) whole tokens from the bucket `key`
   * (created full on first use): as many as it holds, none when it holds less than one.
   */
  async take(key: string, shape: BucketShape, want = 1): Promise<BucketTake> {
    const values: Record<string, unknown> = {
      key,
      rate: shape.rate,
      burst: shape.burst,
      want: Math.max(1, Math.floor(want)),
    };
    const [row] = await this.db.rows<{ tokens: number; last_granted: number }>(
      take.text,
      take.params.map((name) => values[name]),
    );
    const tokens = Number(row?.tokens ?? 0);
    const granted = Number(row?.last_granted ?? 0);
    return {
      admitted: granted >= 1,
      granted,
      tokens,
      retryAfterMs: granted >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / shape.rate),
    };
  }

  /**
   * Reserves one token of the bucket `key` (created full on first use), to be
   * spent `waitMs` from now: when the bucket holds one it is now, else when
   * the refill reaches this caller's turn (the bucket goes below zero by the
   * tokens reserved ahead). Callers served this way admit exactly the rate,
   * without retrying or herding. Refused, taking nothing, when the turn is
   * more than `maxWaitMs` away. Never mix with `take` on one key.
   */
  async reserve(key: string, shape: BucketShape, maxWaitMs: number): Promise<BucketReservation> {
    const values: Record<string, unknown> = {
      key,
      rate: shape.rate,
      burst: shape.burst,
      debt: (Math.max(0, maxWaitMs) / 1000) * shape.rate,
    };
    const [row] = await this.db.rows<{ tokens: number; last_granted: number }>(
      reserve.text,
      reserve.params.map((name) => values[name]),
    );
    const tokens = Number(row?.tokens ?? 0);
    if (Number(row?.last_granted ?? 0) < 1) return { reserved: false, waitMs: 0 };
    return { reserved: true, waitMs: tokens >= 0 ? 0 : Math.ceil((-tokens * 1000) / shape.rate) };
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
