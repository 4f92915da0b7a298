/**
 * Open server streams counted for the whole mesh (ADR-013): one row per open
 * stream, leased by the gateway replica that holds it and renewed while it is
 * open, so a crashed replica's streams expire. UNLOGGED like the rate buckets:
 * seconds of state; after a database crash every tenant starts with none.
 *
 * `stream_lease_open` counts the tenant's live streams and inserts the new one
 * under a per-tenant advisory lock, so two replicas cannot both take the last
 * slot; plpgsql gives the insert a snapshot taken after the lock.
 */
import { Migration } from "@mikro-orm/migrations";

export class StreamLeases extends Migration {
  override up(): void {
    this.addSql(`create unlogged table stream_leases (
      instance text not null,
      stream_id text not null,
      tenant_id text not null,
      expires_at timestamptz not null,
      primary key (instance, stream_id)
    )`);
    this.addSql("create index stream_leases_tenant on stream_leases (tenant_id, expires_at)");
    this.addSql(`create function stream_lease_open(
        p_tenant text, p_instance text, p_stream text, p_limit integer, p_ttl_ms integer
      ) returns boolean language plpgsql volatile as $$
      begin
        perform pg_advisory_xact_lock(hashtextextended('stream-leases:' || p_tenant, 0));
        insert into stream_leases (instance, stream_id, tenant_id, expires_at)
          select p_instance, p_stream, p_tenant, clock_timestamp() + p_ttl_ms * interval '1 millisecond'
          where (select count(*) from stream_leases
                  where tenant_id = p_tenant and expires_at > clock_timestamp()) < p_limit;
        return found;
      end $$`);
  }

  override down(): void {
    this.addSql("drop function if exists stream_lease_open(text, text, text, integer, integer)");
    this.addSql("drop table if exists stream_leases");
  }
}
