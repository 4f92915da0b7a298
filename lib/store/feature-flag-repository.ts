/**
 * Feature flags with a scope: a value for everyone (`tenantId` and
 * `goalKind` empty), for one tenant, for one goal kind, or for one kind in one
 * tenant. `resolve()` returns the most specific value set.
 *
 * @example
 * await store.flags.set({ key: "learning.selector", value: "ucb1", tenantId: "acme" });
 * const flag = await store.flags.resolve("learning.selector", { tenantId: "acme", goalKind: "summarize" });
 */
import type { JsonValue } from "@bufbuild/protobuf";
import { type Db, json, requireText } from "./db.js";
import { FeatureFlagEntity } from "./entities.js";
import type { FeatureFlagRecord } from "./records.js";

export interface FlagScope {
  /** Empty or absent: every tenant. */
  tenantId?: string;
  /** Empty or absent: every goal kind. */
  goalKind?: string;
}

export class FeatureFlagRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Sets a flag's value in a scope. */
  async set(input: FlagScope & { key: string; value: JsonValue }): Promise<FeatureFlagRecord> {
    requireText(input.key, "flag key", 128);
    const [row] = await this.db.mapped<FeatureFlagRecord>(
      FeatureFlagEntity,
      `insert into feature_flags (key, tenant_id, goal_kind, value) values (?, ?, ?, ?::jsonb)
       on conflict (key, tenant_id, goal_kind) do update set value = excluded.value, updated_at = now()
       returning *`,
      [input.key, input.tenantId ?? "", input.goalKind ?? "", json(input.value)],
    );
    return row as FeatureFlagRecord;
  }

  /** The most specific value for a tenant and kind: kind in tenant, then tenant, then kind, then global. */
  async resolve(key: string, scope: FlagScope = {}): Promise<FeatureFlagRecord | undefined> {
    const [row] = await this.db.mapped<FeatureFlagRecord>(
      FeatureFlagEntity,
      `select * from feature_flags
       where key = ? and tenant_id in ('', ?) and goal_kind in ('', ?)
       order by (tenant_id <> '') desc, (goal_kind <> '') desc limit 1`,
      [key, scope.tenantId ?? "", scope.goalKind ?? ""],
    );
    return row;
  }

  /** Every flag, or every scope of one key. */
  async list(options: { key?: string } = {}): Promise<FeatureFlagRecord[]> {
    return options.key
      ? this.db.mapped<FeatureFlagRecord>(
          FeatureFlagEntity,
          "select * from feature_flags where key = ? order by tenant_id, goal_kind",
          [options.key],
        )
      : this.db.mapped<FeatureFlagRecord>(
          FeatureFlagEntity,
          "select * from feature_flags order by key, tenant_id, goal_kind",
        );
  }

  /** Removes a flag's value in one scope; returns whether there was one. */
  async delete(input: FlagScope & { key: string }): Promise<boolean> {
    const rows = await this.db.rows(
      "delete from feature_flags where key = ? and tenant_id = ? and goal_kind = ? returning key",
      [input.key, input.tenantId ?? "", input.goalKind ?? ""],
    );
    return rows.length > 0;
  }
}
