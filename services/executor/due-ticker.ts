/**
 * Each executor replica's ticker: every `tickMs` (and at once when a
 * transition schedules something due soon) it claims due steps and goals left
 * unplanned, under a lease so that replicas never work the same row, and hands
 * them to the engine. Due times live in the store, so whatever a dead replica
 * left is picked up by the others once its leases run out.
 *
 * @example
 * const ticker = new DueTicker({ store, owner, clock, log, fireDue, planPending });
 * ticker.start();
 * ticker.kickAt(clock.now() + 500); // a retry due in half a second
 */
import type { Logger } from "../../lib/log/logger.js";
import type { GoalRecord } from "../../lib/store/records.js";
import type { Store } from "../../lib/store/store.js";
import type { Clock } from "./clock.js";

export interface DueTickerOptions {
  /** How often to claim due work. */
  tickMs: number;
  /** Lease on a claimed step. */
  leaseMs: number;
  /** A PENDING goal younger than this is left to the SubmitGoal call planning it (also its lease). */
  planGraceMs: number;
}

export interface DueTickerDeps extends DueTickerOptions {
  store: Store;
  /** Lease owner name of this replica. */
  owner: string;
  clock: Clock;
  log: Logger;
  /** Feeds what is due for one goal whose `steps` this replica claimed. */
  fireDue(tenantId: string, goalId: string, steps: string[]): Promise<void>;
  /** Plans (or, past its deadline, ends) a goal left unplanned. */
  planPending(goal: GoalRecord): Promise<void>;
  /** Counts ticks. */
  stats: { ticks: number };
}

/** A local fast path further out than this is left to the periodic tick. */
const maxKickAheadMs = 60_000;
/** Unplanned goals are claimed at most this often. */
const goalClaimEveryMs = 1_000;
/**
 * After the store was unreachable, running steps are judged (timed out, their
 * next attempt dispatched) only once it has answered this long: results that
 * arrived during the outage wait to be stored (untilStored, at most 5 s apart)
 * and must land first, or a step that finished would run again.
 */
export const storeRecoveryGraceMs = 10_000;

export class DueTicker {
  readonly #d: DueTickerDeps;
  readonly #timers = new Set<() => void>();
  #stopInterval: (() => void) | undefined;
  #ticking: Promise<void> | undefined;
  #again = false;
  #lastGoalClaim = 0;
  #stopped = false;
  /** Running steps are not judged before this time (see `storeRecoveryGraceMs`). */
  #judgeRunningFrom = 0;

  constructor(deps: DueTickerDeps) {
    this.#d = deps;
  }

  start(): void {
    this.#stopInterval = this.#d.clock.setInterval(() => this.kick(), this.#d.tickMs);
  }

  /** Stops ticking; resolves when the running tick ends. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopInterval?.();
    for (const cancel of this.#timers) cancel();
    this.#timers.clear();
    await this.#ticking;
  }

  /** Ticks now (or as soon as the running tick ends). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#again = true;
      return;
    }
    this.#ticking = this.#tick()
      .catch((err: unknown) => {
        this.#judgeRunningFrom = this.#d.clock.now() + storeRecoveryGraceMs;
        this.#d.log.warn({ err }, "tick failed");
      })
      .finally(() => {
        this.#ticking = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        }
      });
  }

  /** A local fast path for a persisted due time within the next minute. */
  kickAt(at: number): void {
    const wait = at - this.#d.clock.now();
    if (this.#stopped || wait > maxKickAheadMs) return;
    const cancel = this.#d.clock.setTimeout(() => {
      this.#timers.delete(cancel);
      this.kick();
    }, Math.max(0, wait) + 2);
    this.#timers.add(cancel);
  }

  async #tick(): Promise<void> {
    const d = this.#d;
    d.stats.ticks++;
    const judgeRunning = d.clock.now() >= this.#judgeRunningFrom;
    const steps = await d.store.work.claimDueSteps({
      owner: d.owner,
      statuses: judgeRunning ? ["RETRY_WAIT", "DISPATCHED", "RUNNING"] : ["RETRY_WAIT"],
      leaseMs: d.leaseMs,
      limit: 100,
    });
    const byGoal = new Map<string, { tenantId: string; goalId: string; steps: string[] }>();
    for (const s of steps) {
      const g = byGoal.get(s.goalId) ?? { tenantId: s.tenantId, goalId: s.goalId, steps: [] };
      g.steps.push(s.stepId);
      byGoal.set(s.goalId, g);
    }
    await Promise.all(
      [...byGoal.values()].map((g) =>
        d
          .fireDue(g.tenantId, g.goalId, g.steps)
          .catch((err: unknown) =>
            d.log.warn({ err, goalId: g.goalId }, "due work failed; retried after the lease"),
          ),
      ),
    );
    if (d.clock.now() - this.#lastGoalClaim < goalClaimEveryMs) return;
    this.#lastGoalClaim = d.clock.now();
    const goals = await d.store.work.claimGoals({
      owner: d.owner,
      statuses: ["PENDING", "PLANNING"],
      leaseMs: d.planGraceMs,
      limit: 20,
      // A younger goal is still being planned by its SubmitGoal: claiming it (a new
      // version) would make that call's write fail and load the goal again.
      createdBefore: new Date(d.clock.now() - d.planGraceMs),
    });
    for (const g of goals) {
      if (d.clock.now() - g.createdAt.getTime() < d.planGraceMs) continue;
      try {
        await d.planPending(g);
      } catch (err) {
        d.log.warn({ err, goalId: g.id }, "planning retry failed");
      }
    }
  }
}
