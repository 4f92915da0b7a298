/**
 * `agentmesh_require(ok, message)`: raises `serialization_failure` (SQLSTATE
 * 40001, which the store maps to ABORTED) unless `ok` is true, else returns
 * true. Plain SQL cannot raise, and a statement of data-modifying CTEs needs
 * to: a transition's goal update writes its steps in the same statement, and
 * when one step's optimistic guard fails the whole statement, goal row and
 * events included, must roll back.
 *
 * Additive: replicas of an earlier version never call it.
 */
import { Migration } from "@mikro-orm/migrations";

export class RequireFunction extends Migration {
  override up(): void {
    this.addSql(`create function agentmesh_require(ok boolean, message text) returns boolean
      language plpgsql volatile as $fn$
      begin
        if ok is not true then
          raise exception using errcode = 'serialization_failure', message = message;
        end if;
        return true;
      end
    $fn$`);
  }

  override down(): void {
    this.addSql("drop function if exists agentmesh_require(boolean, text)");
  }
}
