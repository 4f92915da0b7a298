/**
 * Strategy statistics on two timescales (issue 25): beside the long counts,
 * recent ones with a short per-outcome memory, so the statement recording an
 * outcome can replace the long counts when a strategy's recent success rate
 * falls well below them (see `strategyOutcomesCte`). Existing rows start with
 * no recent evidence.
 */
import { Migration } from "@mikro-orm/migrations";

export class StrategyRecentStats extends Migration {
  override up(): void {
    this.addSql(`alter table strategy_stats
      add column recent_successes double precision not null default 0,
      add column recent_failures double precision not null default 0`);
  }

  override down(): void {
    this.addSql(`alter table strategy_stats
      drop column if exists recent_successes,
      drop column if exists recent_failures`);
  }
}
