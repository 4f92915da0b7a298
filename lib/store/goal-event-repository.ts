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
  ) {}

  /** Appends an event with the goal's next sequence. NOT_FOUND if the goal does not exist. */
  async append(goalId: string, event: NewGoalEvent): Promise<GoalEventRecord> {
    requireText(goalId, "goal id");
    requireText(event.type, "event type", 64);
    const [row] = await this.db.mapped<GoalEventRecord>(
      GoalEventEntity,
      `with g as (
         update goals set last_event_seq = last_event_seq + 1
         where tenant_id = ? and id = ? returning last_event_seq)
       insert into goal_events (goal_id, sequence, tenant_id, type, data)
       select ?, last_event_seq, ?, ?, ?::jsonb from g
       returning *`,
      [this.tenantId, goalId, goalId, this.tenantId, event.type, json(event.data)],
    );
    if (!row) throw new MeshError(Code.NotFound, `goal ${goalId} not found`);
    return row;
  }

  /** Events with a sequence above `afterSequence` (default 0), oldest first, at most `limit` (default 1000). */
  async list(
    goalId: string,
    options: { afterSequence?: number; limit?: number } = {},
  ): Promise<GoalEventRecord[]> {
    requireText(goalId, "goal id");
    const limit = Math.min(Math.max(options.limit ?? 1000, 1), 10_000);
    return this.db.mapped<GoalEventRecord>(
      GoalEventEntity,
      `select * from goal_events where tenant_id = ? and goal_id = ? and sequence > ?
       order by sequence limit ?`,
      [this.tenantId, goalId, options.afterSequence ?? 0, limit],
    );
  }
}
