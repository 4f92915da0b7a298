/**
 * Rate buckets are seconds of state, rewritten on every take: UNLOGGED spares
 * each take a WAL flush (a contended bucket row went from ~700 to thousands
 * of takes a second; ADR-013). After a database crash they start empty (full
 * buckets, usage counts from zero), which is what a limiter wants anyway.
 * `last_granted` returns how many tokens one take got (a gateway takes
 * several at a time).
 */
import { Migration } from "@mikro-orm/migrations";

export class UnloggedRateBuckets extends Migration {
  override up(): void {
    this.addSql("alter table rate_buckets set unlogged");
    this.addSql(
      "alter table rate_buckets add column last_granted double precision not null default 0",
    );
  }

  override down(): void {
    this.addSql("alter table rate_buckets drop column if exists last_granted");
    this.addSql("alter table rate_buckets set logged");
  }
}
