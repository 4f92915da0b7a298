/**
 * `goals.submitter_roles`: the roles of the principal a goal acts for, as they
 * were at SubmitGoal, so the policy at dispatch can tell whether that principal
 * holds the scope a capability requires (child goals inherit them).
 *
 * Additive: nullable, so replicas of an earlier version insert without it and
 * goals stored before it have none (a scoped capability is then refused).
 */
import { Migration } from "@mikro-orm/migrations";

export class GoalSubmitterRoles extends Migration {
  override up(): void {
    this.addSql("alter table goals add column if not exists submitter_roles text[]");
  }

  override down(): void {
    this.addSql("alter table goals drop column if exists submitter_roles");
  }
}
