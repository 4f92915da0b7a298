/**
 * A tenant's goal events: the history `WatchGoal` replays. Each goal's events
 * are numbered from 1 without gaps, even under concurrent appends from several
 * executor replicas: the append increments a counter on the goal row in the
 * same statement, so appends to one goal serialize on that row and a rolled
 * back append gives its number back.
 *
 * @example
 * const event = await store.tenant(t).events.append(goalId, { type: "submitted", data: { kind } });
 * const missed = await store.tenant(t).events.list(goalId, { afterSequence: 7 });
 */

import type { JsonValue } from "@bufbuild/protobuf";
import { Code, MeshError } from "../errors/mesh-error.js";
import { type Db, json, requireText } from "./db.js";
import { GoalEventEntity } from "./entities.js";
import { type PayloadCipher, sealEvents } from "./payload-cipher.js";
import { payloadColumns } from "./payload-columns.js";
import type { GoalEventRecord } from "./records.js";

export interface NewGoalEvent {
  /** Event kind, e.g. the GoalEvent oneof case: `submitted`, `stepSucceeded`. */
  type: string;
  /** Event body, e.g. the protobuf JSON of the oneof value. */
  data: JsonValue;
}

export class GoalEventRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
    private readonly cipher: PayloadCipher,
  ) {}

  /** Events as stored, with sealed data opened. */
  #open(rows: GoalEventRecord[]): Promise<GoalEventRecord[]> {
    return Promise.all(
      rows.map(async (r) => {
        const data = await this.cipher.openPayload(this.tenantId, payloadColumns.eventData, r.data);
        return data === r.data ? r : { ...r, data };
      }),
    );
  }

  /** Appends an event with the goal's next sequence. NOT_FOUND if the goal does not exist. */
  async append(goalId: string, event: NewGoalEvent): Promise<GoalEventRecord> {
    const [row] = await this.appendMany(goalId, [event]);
    return row!;
  }

  /**
   * Appends events with the goal's next sequences, in order, in one statement.
   * NOT_FOUND if the goal does not exist.
   */
  async appendMany(goalId: string, events: readonly NewGoalEvent[]): Promise<GoalEventRecord[]> {
    requireText(goalId, "goal id");
    if (events.length === 0) return [];
    const insert = insertEvents("g", await sealEvents(this.cipher, this.tenantId, events));
    const rows = await this.db.mapped<GoalEventRecord>(
      GoalEventEntity,
      `with g as (
         update goals set last_event_seq = last_event_seq + ?
         where tenant_id = ? and id = ? returning id, tenant_id, last_event_seq)
       ${insert.sql}
       returning *`,
      [events.length, this.tenantId, goalId, ...insert.params],
    );
    if (rows.length === 0) throw new MeshError(Code.NotFound, `goal ${goalId} not found`);
    return this.#open(rows.sort((a, b) => a.sequence - b.sequence));
  }

  /** Events with a sequence above `afterSequence` (default 0), oldest first, at most `limit` (default 1000). */
  async list(
    goalId: string,
    options: { afterSequence?: number; limit?: number } = {},
  ): Promise<GoalEventRecord[]> {
    requireText(goalId, "goal id");
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 10_000);
    return this.#open(
      await this.db.mapped<GoalEventRecord>(
        GoalEventEntity,
        `select * from goal_events where tenant_id = ? and goal_id = ? and sequence > ?
       order by sequence limit ?`,
        [this.tenantId, goalId, options.afterSequence ?? 0, limit],
      ),
    );
  }
}

/**
 * `insert into goal_events ... select ... from <goal>`: the events numbered up
 * to `<goal>.last_event_seq`, the goal row's counter after it was raised by
 * `events.length` in the same statement (a CTE named `goal` returning `id`,
 * `tenant_id` and `last_event_seq`). Sharing the statement with the counter
 * keeps the sequence gapless and costs one round trip for any number of events.
 * @internal
 */
export function insertEvents(
  goal: string,
  events: readonly NewGoalEvent[],
): { sql: string; params: unknown[] } {
  for (const e of events) requireText(e.type, "event type", 64);
  return {
    sql: `insert into goal_events (goal_id, sequence, tenant_id, type, data)
       select ${goal}.id, ${goal}.last_event_seq - ? + x.n, ${goal}.tenant_id, x.e->>'type', x.e->'data'
       from ${goal}, jsonb_array_elements(?::jsonb) with ordinality as x(e, n)`,
    params: [events.length, json(events.map((e) => ({ type: e.type, data: e.data ?? null })))],
  };
}
