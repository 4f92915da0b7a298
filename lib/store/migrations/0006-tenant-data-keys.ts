/**
 * Encryption at rest per tenant: the tenant's choice (`off`, `sensitive`:
 * the contract's sensitive fields, `all`: every payload) and its data keys,
 * each stored only wrapped by a key-encryption key the database never sees
 * (a file KEK or Vault Transit). Erasing a tenant deletes its rows here.
 *
 * Additive: replicas of an earlier version neither read nor write them.
 */
import { Migration } from "@mikro-orm/migrations";

export class TenantDataKeys extends Migration {
  override up(): void {
    this.addSql(
      "alter table tenants add column encryption text not null default 'off' check (encryption in ('off', 'sensitive', 'all'))",
    );
    this.addSql("alter table tenants add column erased_at timestamptz");
    this.addSql(`create table tenant_data_keys (
      tenant_id text not null references tenants (id),
      version integer not null check (version > 0),
      wrapped text not null,
      created_at timestamptz not null default now(),
      primary key (tenant_id, version))`);
  }

  override down(): void {
    this.addSql("drop table if exists tenant_data_keys");
    this.addSql("alter table tenants drop column if exists erased_at");
    this.addSql("alter table tenants drop column if exists encryption");
  }
}
