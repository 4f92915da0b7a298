/**
 * Agents in probation (ADR-015): a new version whose card declares
 * conformance examples registers as PROBATION, takes no live traffic and is
 * not found by FindAgents until the registry saw it pass them; then it is
 * LIVE and `conformance_passed_at` says when, so another instance of the
 * same card need not prove it again. Its lease expires like a live one's.
 */
import { Migration } from "@mikro-orm/migrations";

export class AgentProbation extends Migration {
  override up(): void {
    this.addSql(`alter table agents drop constraint if exists agents_state_check`);
    this.addSql(`alter table agents add constraint agents_state_check
      check (state in ('LIVE','DRAINING','EXPIRED','DEREGISTERED','PROBATION'))`);
    this.addSql(`alter table agents add column conformance_passed_at timestamptz`);
    this.addSql(`drop index if exists agents_leases`);
    this.addSql(
      `create index agents_leases on agents (lease_expires_at) where state in ('LIVE','DRAINING','PROBATION')`,
    );
  }

  override down(): void {
    this.addSql(`update agents set state = 'EXPIRED' where state = 'PROBATION'`);
    this.addSql(`alter table agents drop constraint if exists agents_state_check`);
    this.addSql(`alter table agents add constraint agents_state_check
      check (state in ('LIVE','DRAINING','EXPIRED','DEREGISTERED'))`);
    this.addSql(`alter table agents drop column if exists conformance_passed_at`);
    this.addSql(`drop index if exists agents_leases`);
    this.addSql(
      `create index agents_leases on agents (lease_expires_at) where state in ('LIVE','DRAINING')`,
    );
  }
}
