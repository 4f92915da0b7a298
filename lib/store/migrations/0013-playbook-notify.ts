/**
 * Every change to a tenant's playbooks notifies `agentmesh_playbooks_<schema>`
 * with the tenant's id (`*` for a truncate), so planner replicas can keep the
 * playbooks they plan with in memory and drop a tenant's the moment any writer
 * (any replica, a tenant's erasure, an operator's SQL) changes them. A trigger
 * rather than the writer's own NOTIFY: the notification is sent at commit,
 * with the change, whoever wrote it.
 */
import { Migration } from "@mikro-orm/migrations";

export class PlaybookNotify extends Migration {
  override up(): void {
    this.addSql(`create function playbooks_notify() returns trigger language plpgsql as $$
      begin
        perform pg_notify(
          left('agentmesh_playbooks_' || tg_table_schema, 63),
          case when tg_op = 'TRUNCATE' then '*'
               when tg_op = 'DELETE' then old.tenant_id
               else new.tenant_id end);
        return null;
      end $$`);
    this.addSql(`create trigger playbooks_notify after insert or update or delete on playbooks
      for each row execute function playbooks_notify()`);
    this.addSql(`create trigger playbooks_notify_truncate after truncate on playbooks
      for each statement execute function playbooks_notify()`);
  }

  override down(): void {
    this.addSql("drop trigger if exists playbooks_notify_truncate on playbooks");
    this.addSql("drop trigger if exists playbooks_notify on playbooks");
    this.addSql("drop function if exists playbooks_notify()");
  }
}
