/**
 * A tenant's open server streams counted for the whole mesh (ADR-013): one
 * row per open stream, owned by the gateway replica (`instance`) that holds
 * it. `open` admits a stream only while the tenant has fewer live streams
 * than its limit (one statement, serialized per tenant); the replica renews
 * all its leases in one statement per interval (`renew`) and deletes a row
 * when the stream ends, so a crashed replica's streams expire with its lease.
 *
 * @example
 * if (await store.streams.open({ tenantId: "acme", instance, streamId, limit: 3, ttlMs: 30_000 })) …
 * await store.streams.renew(instance, 30_000);
 * await store.streams.close(instance, streamId);
 */
import type { Db } from "./db.js";

export interface StreamLeaseRequest {
  tenantId: string;
  /** The gateway replica holding the stream. */
  instance: string;
  streamId: string;
  /** Most live streams the tenant may hold across the mesh. */
  limit: number;
  /** How long the lease lasts unless renewed. */
  ttlMs: number;
}

export class StreamLeaseRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Leases a stream slot; false when the tenant already holds `limit` live streams. */
  async open(req: StreamLeaseRequest): Promise<boolean> {
    const [row] = await this.db.rows<{ ok: boolean }>(
      "select stream_lease_open(?, ?, ?, ?::integer, ?::integer) as ok",
      [req.tenantId, req.instance, req.streamId, req.limit, Math.ceil(req.ttlMs)],
    );
    return row?.ok === true;
  }

  /** Extends every lease of `instance` by `ttlMs` from now; returns how many. */
  async renew(instance: string, ttlMs: number): Promise<number> {
    const rows = await this.db.rows<{ stream_id: string }>(
      `update stream_leases set expires_at = clock_timestamp() + ?::integer * interval '1 millisecond'
        where instance = ? returning stream_id`,
      [Math.ceil(ttlMs), instance],
    );
    return rows.length;
  }

  /** Ends a stream's lease (no-op when it is gone). */
  async close(instance: string, streamId: string): Promise<void> {
    await this.db.rows("delete from stream_leases where instance = ? and stream_id = ?", [
      instance,
      streamId,
    ]);
  }

  /** Ends every lease of `instance` (a replica shutting down). */
  async closeAll(instance: string): Promise<void> {
    await this.db.rows("delete from stream_leases where instance = ?", [instance]);
  }

  /** The tenant's live streams across the mesh. */
  async count(tenantId: string): Promise<number> {
    const [row] = await this.db.rows<{ n: string }>(
      "select count(*) as n from stream_leases where tenant_id = ? and expires_at > clock_timestamp()",
      [tenantId],
    );
    return Number(row?.n ?? 0);
  }
}
