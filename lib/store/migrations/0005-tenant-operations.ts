/**
 * Tenant operations: a tenant can be suspended; token buckets shared by every
 * replica (the tenants' request rates at the gateways, their step quotas at
 * dispatch; ADR-013); an index that counts a tenant's goals in flight (the
 * concurrent-goals limit); and the span a goal's trace continues from, so
 * its jobs, retries and child goals join the trace its submission started.
 *
 * Additive: replicas of an earlier version ignore the new columns and tables.
 */
import { Migration } from "@mikro-orm/migrations";

export class TenantOperations extends Migration {
  override up(): void {
    this.addSql("alter table tenants add column suspended_at timestamptz");
    this.addSql("alter table tenants add column suspended_reason text not null default ''");
    this.addSql(`create table rate_buckets (
      key text primary key,
      tokens double precision not null,
      refilled_at timestamptz not null,
      admitted bigint not null default 0,
      refused bigint not null default 0,
      last_admitted boolean not null default true)`);
    this.addSql(`create index goals_tenant_in_flight on goals (tenant_id)
      where status in ('PENDING','PLANNING','RUNNING')`);
    this.addSql("alter table goals add column trace_span_id text");
  }

  override down(): void {
    this.addSql("alter table goals drop column if exists trace_span_id");
    this.addSql("drop index if exists goals_tenant_in_flight");
    this.addSql("drop table if exists rate_buckets");
    this.addSql("alter table tenants drop column if exists suspended_reason");
    this.addSql("alter table tenants drop column if exists suspended_at");
  }
}
