/**
 * Fewer index entries per goal, on the indexes every goal passes through:
 *
 * - `goals_claimable` held every unfinished goal, but only PENDING and
 *   PLANNING goals are ever claimed (`WorkQueue.claimGoals` from the
 *   executors' tickers); a goal created planned (RUNNING) no longer enters it.
 * - `goals_idempotency` held every goal, most with a null key that can never
 *   conflict; it now holds the goals with a key. A goal without one writes
 *   one entry fewer when created and when its row is updated.
 * - `steps_goal` was read by no query (a goal's steps are found by its plan,
 *   and deleted with it); a step wrote an entry in it when inserted and at
 *   every change of its status.
 */
import { Migration } from "@mikro-orm/migrations";

export class GoalIndexEntries extends Migration {
  override up(): void {
    this.addSql("drop index if exists goals_claimable");
    this.addSql(`create index goals_claimable on goals (status, priority desc, created_at)
      where status in ('PENDING','PLANNING')`);
    this.addSql(`create unique index goals_idempotency_key on goals (tenant_id, idempotency_key)
      where idempotency_key is not null`);
    this.addSql("alter table goals drop constraint goals_idempotency");
    this.addSql("alter index goals_idempotency_key rename to goals_idempotency");
    this.addSql("drop index if exists steps_goal");
  }

  override down(): void {
    this.addSql("create index if not exists steps_goal on steps (goal_id)");
    this.addSql("drop index if exists goals_idempotency");
    this.addSql(
      "alter table goals add constraint goals_idempotency unique (tenant_id, idempotency_key)",
    );
    this.addSql("drop index if exists goals_claimable");
    this.addSql(`create index goals_claimable on goals (status, priority desc, created_at)
      where status in ('PENDING','PLANNING','RUNNING')`);
  }
}
