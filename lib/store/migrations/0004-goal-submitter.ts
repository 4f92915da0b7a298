/**
 * `goals.submitted_by`: who a goal acts for (the gateway's delegated principal
 * as `<tenant>/<subject>`, else the calling mesh identity's SPIFFE ID), so the
 * policy at dispatch sees the submitter of every step, child goals included.
 *
 * Additive: nullable, so replicas of an earlier version insert without it and
 * goals stored before it have none.
 */
import { Migration } from "@mikro-orm/migrations";

export class GoalSubmitter extends Migration {
  override up(): void {
    this.addSql("alter table goals add column if not exists submitted_by text");
  }

  override down(): void {
    this.addSql("alter table goals drop column if exists submitted_by");
  }
}
