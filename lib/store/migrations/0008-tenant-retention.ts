/**
 * Per-tenant data retention (finished goals older than `retention_days` are
 * purged with their plans, steps, events and experiences; the audit log is
 * kept) and the region a tenant's data is pinned to.
 *
 * Additive: replicas of an earlier version neither read nor write them.
 */
import { Migration } from "@mikro-orm/migrations";

export class TenantRetention extends Migration {
  override up(): void {
    this.addSql(
      "alter table tenants add column retention_days integer check (retention_days is null or retention_days > 0)",
    );
    this.addSql("alter table tenants add column region text");
    // The purge finds a tenant's oldest finished goals by this.
    this.addSql(
      "create index goals_tenant_finished on goals (tenant_id, finished_at) where finished_at is not null",
    );
  }

  override down(): void {
    this.addSql("drop index if exists goals_tenant_finished");
    this.addSql("alter table tenants drop column if exists region");
    this.addSql("alter table tenants drop column if exists retention_days");
  }
}
