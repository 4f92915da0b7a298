/**
 * Similarity signatures of experiences (issue 25): a 64-bit SimHash of the
 * feature vector and its 8 band codes, so warm start finds similar
 * experiences by an indexed query (`lsh_bands && ?`, ranked by Hamming
 * distance, LIMIT k) instead of reading the newest rows into the service.
 *
 * Additive: rows written before it (or by replicas of an earlier version)
 * have no signature and are simply not found by the similarity query.
 */
import { Migration } from "@mikro-orm/migrations";

export class ExperienceSignatures extends Migration {
  override up(): void {
    this.addSql("alter table experiences add column signature bigint");
    this.addSql("alter table experiences add column lsh_bands int[]");
    this.addSql("create index experiences_lsh_bands on experiences using gin (lsh_bands)");
  }

  override down(): void {
    this.addSql("drop index if exists experiences_lsh_bands");
    this.addSql("alter table experiences drop column if exists lsh_bands");
    this.addSql("alter table experiences drop column if exists signature");
  }
}
