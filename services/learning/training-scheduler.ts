/**
 * Scheduled training: every replica keeps a timer for the next cron slot,
 * and when it fires, claims the slot in the store with one atomic
 * compare-and-set (an upsert that only succeeds if the stored slot differs).
 * Exactly one replica wins each slot, whatever the clock skew between them;
 * the winner triggers training (on the bus when there is one, so any
 * replica may run it, else inline).
 *
 * @example
 * const scheduler = startTrainingScheduler({ store, log, schedule: "0 3 * * *", trigger });
 * await scheduler.stop();
 */
import type { Logger } from "../../lib/log/logger.js";
import type { Store } from "../../lib/store/index.js";
import { DEFAULT_TRAINING_SCHEDULE, parseSchedule } from "./domain/index.js";

/** Feature-flag key holding the last claimed training slot (an ISO time). */
export const trainingSlotKey = "learning.training.claimed_slot";

export interface TrainingSchedulerOptions {
  store: Store;
  log: Logger;
  /** Cron expression (5 or 6 fields, UTC); default nightly at 03:00. */
  schedule?: string;
  /** Starts a run for a claimed slot. */
  trigger: (reason: string) => Promise<unknown>;
  /** Default `Date.now`. */
  clock?: () => number;
}

export interface TrainingScheduler {
  /** The next slot, if any. */
  readonly next: Date | undefined;
  /** Claims `slot` for this replica; true when it won. */
  claim(slot: Date): Promise<boolean>;
  stop(): void;
}

// setTimeout cannot wait longer than ~24.8 days; re-arm in steps.
const maxDelayMs = 2 ** 31 - 1;

export function startTrainingScheduler(options: TrainingSchedulerOptions): TrainingScheduler {
  const { store, log } = options;
  const clock = options.clock ?? Date.now;
  const schedule = parseSchedule(options.schedule ?? DEFAULT_TRAINING_SCHEDULE);
  let timer: NodeJS.Timeout | undefined;
  let next: Date | undefined;
  let stopped = false;

  const claim = async (slot: Date): Promise<boolean> => {
    const rows = await store.orm.em
      .fork()
      .getConnection()
      .execute<{ key: string }[]>(
        `insert into feature_flags (key, tenant_id, goal_kind, value) values (?, '', '', to_jsonb(?::text))
         on conflict (key, tenant_id, goal_kind) do update set value = excluded.value, updated_at = now()
         where feature_flags.value is distinct from excluded.value
         returning key`,
        [trainingSlotKey, slot.toISOString()],
      );
    return rows.length > 0;
  };

  const arm = () => {
    if (stopped) return;
    next = schedule.next(new Date(clock()));
    if (!next) return;
    const slot = next;
    const delay = Math.min(Math.max(slot.getTime() - clock(), 0), maxDelayMs);
    timer = setTimeout(() => {
      if (clock() < slot.getTime()) return arm();
      claim(slot)
        .then(async (won) => {
          if (!won) return;
          log.info({ slot: slot.toISOString() }, "scheduled training claimed");
          await options.trigger(`schedule ${slot.toISOString()}`);
        })
        .catch((err: unknown) => log.warn({ err }, "scheduled training failed"))
        .finally(arm);
    }, delay);
    timer.unref();
  };
  arm();

  return {
    get next() {
      return next;
    },
    claim,
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
