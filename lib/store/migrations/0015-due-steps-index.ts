/**
 * The executors' tickers claim due steps in RETRY_WAIT, DISPATCHED and RUNNING
 * (`WorkQueue.claimDueSteps`), earliest due first, several times a second; the
 * index covered RETRY_WAIT only, so every claim read the whole steps table,
 * finished steps included. Now it holds every step in one of those statuses,
 * in the claim's order; a step leaves it as it ends.
 */
import { Migration } from "@mikro-orm/migrations";

export class DueStepsIndex extends Migration {
  override up(): void {
    this.addSql("drop index if exists steps_due");
    this.addSql(`create index steps_due on steps (next_attempt_at nulls first)
      where status in ('RETRY_WAIT','DISPATCHED','RUNNING')`);
  }

  override down(): void {
    this.addSql("drop index if exists steps_due");
    this.addSql("create index steps_due on steps (next_attempt_at) where status = 'RETRY_WAIT'");
  }
}
