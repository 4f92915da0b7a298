/**
 * The audit chain's head in a one-row table, so an append is one statement:
 * it takes the head row's lock, advances it (hashing in SQL) and inserts the
 * row, instead of locking `audit_events` and reading its last row first.
 *
 * Initialised from the last row of `audit_events`. Replicas of an earlier
 * version (which append under the table lock) must not run beside this one.
 */
import { Migration } from "@mikro-orm/migrations";

const genesis = "0".repeat(64);

export class AuditHead extends Migration {
  override up(): void {
    this.addSql(`create table audit_head (
      id boolean primary key default true check (id),
      seq bigint not null check (seq >= 0),
      prev_hash text not null check (length(prev_hash) = 64),
      hash text not null check (length(hash) = 64))`);
    this.addSql(`insert into audit_head (seq, prev_hash, hash)
      select coalesce(max(seq), 0),
        coalesce((select prev_hash from audit_events order by seq desc limit 1), '${genesis}'),
        coalesce((select hash from audit_events order by seq desc limit 1), '${genesis}')
      from audit_events`);
  }

  override down(): void {
    this.addSql("drop table if exists audit_head");
  }
}
