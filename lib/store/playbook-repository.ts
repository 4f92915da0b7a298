/**
 * A tenant's own playbooks (global playbooks come from files and are not
 * stored). Every put increments the version; a put with `expectedVersion`
 * fails with ABORTED if someone else changed the playbook first.
 *
 * @example
 * const { version } = await store.tenant(t).playbooks.put("summarize", playbookJson);
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import { constraintOf, type Db, json, requireText } from "./db.js";
import { PlaybookEntity } from "./entities.js";
import type { PlaybookRecord } from "./records.js";

export class PlaybookRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
  ) {}

  /** The playbook for a goal kind, or undefined. */
  async find(goalKind: string): Promise<PlaybookRecord | undefined> {
    const [row] = await this.db.mapped<PlaybookRecord>(
      PlaybookEntity,
      "select * from playbooks where tenant_id = ? and goal_kind = ?",
      [this.tenantId, goalKind],
    );
    return row;
  }

  /** The playbook for a goal kind, or NOT_FOUND. */
  async get(goalKind: string): Promise<PlaybookRecord> {
    const row = await this.find(goalKind);
    if (!row) throw new MeshError(Code.NotFound, `playbook ${goalKind} not found`);
    return row;
  }

  /** Every playbook of the tenant, by goal kind. */
  async list(): Promise<PlaybookRecord[]> {
    return this.db.mapped<PlaybookRecord>(
      PlaybookEntity,
      "select * from playbooks where tenant_id = ? order by goal_kind",
      [this.tenantId],
    );
  }

  /**
   * Creates or replaces a playbook. With `expectedVersion` the write happens
   * only if the stored version matches (0 means "must not exist yet").
   */
  async put(
    goalKind: string,
    playbook: JsonObject,
    options: { expectedVersion?: number } = {},
  ): Promise<PlaybookRecord> {
    requireText(goalKind, "goal kind", 128);
    const expected = options.expectedVersion;
    let sql: string;
    let params: unknown[];
    if (expected === undefined) {
      sql = `insert into playbooks (tenant_id, goal_kind, playbook) values (?, ?, ?::jsonb)
             on conflict (tenant_id, goal_kind) do update
               set playbook = excluded.playbook, version = playbooks.version + 1, updated_at = now()
             returning *`;
      params = [this.tenantId, goalKind, json(playbook)];
    } else if (expected === 0) {
      sql = `insert into playbooks (tenant_id, goal_kind, playbook) values (?, ?, ?::jsonb)
             on conflict (tenant_id, goal_kind) do nothing returning *`;
      params = [this.tenantId, goalKind, json(playbook)];
    } else {
      sql = `update playbooks set playbook = ?::jsonb, version = version + 1, updated_at = now()
             where tenant_id = ? and goal_kind = ? and version = ? returning *`;
      params = [json(playbook), this.tenantId, goalKind, expected];
    }
    let row: PlaybookRecord | undefined;
    try {
      [row] = await this.db.mapped<PlaybookRecord>(PlaybookEntity, sql, params);
    } catch (err) {
      const constraint = constraintOf(isMeshError(err) ? err.cause : err);
      if (constraint.includes("tenant_id_fkey")) {
        throw new MeshError(Code.NotFound, `tenant ${this.tenantId} not found`, { cause: err });
      }
      throw err;
    }
    if (row) return row;
    const current = await this.find(goalKind);
    throw new MeshError(
      Code.Aborted,
      `playbook ${goalKind} was changed concurrently (expected version ${expected}, found ${current?.version ?? 0})`,
      {
        details: { goalKind, expectedVersion: expected ?? 0, actualVersion: current?.version ?? 0 },
      },
    );
  }

  /** Deletes a playbook; NOT_FOUND if there is none. */
  async delete(goalKind: string): Promise<void> {
    const rows = await this.db.rows(
      "delete from playbooks where tenant_id = ? and goal_kind = ? returning goal_kind",
      [this.tenantId, goalKind],
    );
    if (rows.length === 0) throw new MeshError(Code.NotFound, `playbook ${goalKind} not found`);
  }
}
