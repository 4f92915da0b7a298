/**
 * Claiming due work across tenants, for executor (and planner) replicas.
 * A claim takes a time-limited lease on each row in one statement with
 * `FOR UPDATE SKIP LOCKED`, so concurrent replicas never claim the same row:
 * a row another replica is claiming is skipped, a row with a current lease is
 * not due. A replica that dies simply lets its leases run out.
 *
 * This is the one place that reads several tenants' rows at once; follow-up
 * writes go through `store.tenant(row.tenantId)` with the returned `version`.
 * An erased tenant's rows are never claimed: their payloads cannot be opened
 * and nothing more may be stored for them.
 *
 * @example
 * for (const goal of await store.work.claimGoals({ owner: replicaId, statuses: ["PENDING"] })) {
 *   await store.tenant(goal.tenantId).goals.update(goal.id, goal.version, { status: "PLANNING" });
 * }
 */

import { Code, MeshError } from "../errors/mesh-error.js";
import { type Db, requireText } from "./db.js";
import { GoalEntity, StepEntity } from "./entities.js";
import { openGoal, type PayloadCipher } from "./payload-cipher.js";
import { openSteps } from "./plan-repository.js";
import {
  type GoalRecord,
  type GoalStatusName,
  goalStatuses,
  type StepRecord,
  type StepStatusName,
  stepStatuses,
} from "./records.js";

export interface ClaimOptions {
  /** Who claims, e.g. the replica id; stored as `lease_owner`. */
  owner: string;
  /** How long the lease lasts; default 30 s. */
  leaseMs?: number;
  /** At most this many rows; default 10. */
  limit?: number;
}

export class WorkQueue {
  /** @internal */
  constructor(
    private readonly db: Db,
    private readonly cipher: PayloadCipher,
  ) {}

  /**
   * Claims goals in the given statuses (default PENDING) without a current
   * lease, highest priority then oldest first. Each claimed goal's version is
   * incremented. `createdBefore`: only goals created before it (the goals a
   * submission is still saving are left alone: a claim would make its write
   * fail with ABORTED and load the goal again).
   */
  async claimGoals(
    options: ClaimOptions & { statuses?: GoalStatusName[]; createdBefore?: Date },
  ): Promise<GoalRecord[]> {
    const { owner, leaseMs, limit } = claimArgs(options);
    const rows = await this.db.mapped<GoalRecord>(
      GoalEntity,
      `update goals set lease_owner = ?, lease_expires_at = now() + ? * interval '1 millisecond',
         version = version + 1, updated_at = now()
       where id in (
         select id from goals
         where status in (${statusList(options.statuses ?? ["PENDING"], goalStatuses)}) and (lease_expires_at is null or lease_expires_at < now())
           and created_at < coalesce(?::timestamptz, 'infinity')
           and tenant_id not in (select id from tenants where erased_at is not null)
         order by priority desc, created_at
         limit ? for update skip locked)
       returning *`,
      [owner, leaseMs, options.createdBefore ?? null, limit],
    );
    const opened = await Promise.all(rows.map((r) => openGoal(this.cipher, r)));
    return opened.sort(
      (a, b) => b.priority - a.priority || a.createdAt.getTime() - b.createdAt.getTime(),
    );
  }

  /**
   * Claims steps in the given statuses (default RETRY_WAIT) whose
   * `next_attempt_at` is due (or unset) and that have no current lease,
   * earliest due first. Each claimed step's version is incremented.
   */
  async claimDueSteps(
    options: ClaimOptions & { statuses?: StepStatusName[] },
  ): Promise<StepRecord[]> {
    const { owner, leaseMs, limit } = claimArgs(options);
    const rows = await this.db.mapped<StepRecord>(
      StepEntity,
      `update steps set lease_owner = ?, lease_expires_at = now() + ? * interval '1 millisecond',
         version = version + 1, updated_at = now()
       where (plan_id, step_id) in (
         select plan_id, step_id from steps
         where status in (${statusList(options.statuses ?? ["RETRY_WAIT"], stepStatuses)})
           and (next_attempt_at is null or next_attempt_at <= now())
           and (lease_expires_at is null or lease_expires_at < now())
           and tenant_id not in (select id from tenants where erased_at is not null)
         order by next_attempt_at nulls first
         limit ? for update skip locked)
       returning *`,
      [owner, leaseMs, limit],
    );
    const opened = await openSteps(this.cipher, rows);
    return opened.sort(
      (a, b) => (a.nextAttemptAt?.getTime() ?? 0) - (b.nextAttemptAt?.getTime() ?? 0),
    );
  }
}

/**
 * The statuses as SQL literals, checked against the known names. Literals, not
 * a parameter: the prepared statement's generic plan can then use the partial
 * index whose predicate they fall in (`goals_claimable`, `steps_due`); with a
 * parameter only a plan made for its value could, so it would be planned anew
 * on every claim or read the whole table.
 */
function statusList(statuses: readonly string[], known: readonly string[]): string {
  // No status claims nothing, as `status = any('{}')` did.
  if (statuses.length === 0) return "null";
  for (const s of statuses) {
    if (!known.includes(s)) {
      throw new MeshError(Code.InvalidArgument, `invalid status ${JSON.stringify(s)}`);
    }
  }
  return [...new Set(statuses)]
    .sort()
    .map((s) => `'${s}'`)
    .join(",");
}

function claimArgs(options: ClaimOptions) {
  const owner = requireText(options.owner, "lease owner", 256);
  const leaseMs = options.leaseMs ?? 30_000;
  const limit = options.limit ?? 10;
  if (!(leaseMs > 0) || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new MeshError(Code.InvalidArgument, "lease must be positive and limit within 1..1000");
  }
  return { owner, leaseMs, limit };
}
