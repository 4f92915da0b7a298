/**
 * A step job the bus could not take because it was away (NATS down, or
 * restarting and its JetStream not answering yet) is published again, under
 * the same attempt id, as soon as the bus takes it — not left to the step's
 * due time. Without this, a job dispatched during a NATS outage waited out
 * its whole attempt timeout (10 s by default) after NATS was back, and then
 * cost the step an attempt: the redispatch check 5 s after dispatch fell
 * inside the outage too, and the next due time was the timeout.
 *
 * A retry ends when the job is published, when the bus refuses it for good
 * (too large, closed), when its attempt's deadline passes (an agent would
 * refuse it then: the timeout takes over) or at `stop()`. Crash safety is
 * not its job: a replica that dies meanwhile leaves the step DISPATCHED, and
 * any replica's ticker re-publishes it at its due time as before.
 *
 * @example
 * const retry = new DispatchRetry({ bus, clock, log });
 * bus.publishJob(job).catch((err) => retry.add(job, err));
 */
import { durationMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { StepJob } from "../../gen/agentmesh/v1/jobs_pb.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { Code, isMeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import { type Clock, sleep } from "./clock.js";

/** Pause between tries while the bus is connected but refuses (JetStream still starting). */
const firstPauseMs = 200;
const maxPauseMs = 2_000;

/** How often a retry looks whether the bus is connected again. */
const connectionPollMs = 100;

/** Jobs retried at once at most; beyond, a job is left to its due time. */
const maxRetrying = 10_000;

export interface DispatchRetryDeps {
  bus: JobBus;
  clock: Clock;
  log: Logger;
  /**
   * Asked before each try: whether the job's attempt is still waiting for it
   * (a goal cancelled or ended during the outage is not). Default: always.
   */
  stillWanted?: (job: StepJob) => Promise<boolean>;
}

/** Whether a failed publish may succeed later: the bus was away, not the job wrong. */
export function passingPublishFailure(err: unknown): boolean {
  return isMeshError(err) && (err.code === Code.Unavailable || err.code === Code.DeadlineExceeded);
}

/** Until when a job may still be published: its attempt's deadline, else its timeout from now. */
export function publishableUntil(job: StepJob, now: number): number {
  if (job.attemptDeadline) return timestampMs(job.attemptDeadline);
  return now + (job.timeout ? durationMs(job.timeout) : 0);
}

export class DispatchRetry {
  readonly #deps: DispatchRetryDeps;
  /** By attempt id: one retry per job, however often its publish failed. */
  readonly #retrying = new Map<string, Promise<void>>();
  #stopped = false;
  /** Published after a failed first try, for tests and logs. */
  published = 0;

  constructor(deps: DispatchRetryDeps) {
    this.#deps = deps;
  }

  get size(): number {
    return this.#retrying.size;
  }

  /**
   * Called with a job whose publish failed with `err`: retries it in the
   * background when the failure is passing. Returns at once.
   */
  add(job: StepJob, err: unknown): void {
    const { log, clock } = this.#deps;
    const ids = { goalId: job.goalId, attemptId: job.attemptId };
    if (this.#stopped || !passingPublishFailure(err)) {
      log.warn({ err, ...ids }, "job not published; the step's due time takes over");
      return;
    }
    if (this.#retrying.has(job.attemptId)) return;
    if (this.#retrying.size >= maxRetrying) {
      log.warn({ err, ...ids }, "job not published; too many retrying, left to its due time");
      return;
    }
    log.info({ err: (err as Error).message, ...ids }, "job not published yet; retrying");
    const p = this.#retry(job, publishableUntil(job, clock.now())).finally(() =>
      this.#retrying.delete(job.attemptId),
    );
    this.#retrying.set(job.attemptId, p);
  }

  async #retry(job: StepJob, until: number): Promise<void> {
    const { bus, clock, log } = this.#deps;
    let pause = firstPauseMs;
    for (;;) {
      const left = until - clock.now();
      if (this.#stopped) return;
      if (left <= 0) {
        log.warn(
          { goalId: job.goalId, attemptId: job.attemptId },
          "job not published before its attempt's deadline; the attempt times out",
        );
        return;
      }
      try {
        // Connected first, so the check below sees what happened during the outage.
        if (!(await this.#connected(until))) continue;
        if (!(await this.#wanted(job))) {
          log.info({ goalId: job.goalId, attemptId: job.attemptId }, "job no longer wanted");
          return;
        }
        await bus.publishJob(job, { waitForConnectionMs: Math.max(0, until - clock.now()) });
        this.published++;
        log.info({ goalId: job.goalId, attemptId: job.attemptId }, "job published on retry");
        return;
      } catch (err) {
        if (!passingPublishFailure(err)) {
          log.warn({ err, attemptId: job.attemptId }, "job not published; the attempt times out");
          return;
        }
      }
      await sleep(clock, Math.min(pause, Math.max(0, until - clock.now())));
      pause = Math.min(maxPauseMs, pause * 2);
    }
  }

  /** Waits (polling) until the bus is connected; false when stopped or past `until` first; throws when closed. */
  async #connected(until: number): Promise<boolean> {
    const { bus, clock } = this.#deps;
    for (;;) {
      if (this.#stopped || clock.now() >= until) return false;
      try {
        bus.checkAvailable();
        return true;
      } catch (err) {
        if (!passingPublishFailure(err)) throw err; // closed: no retry mends it
      }
      await sleep(clock, connectionPollMs);
    }
  }

  /** Whether to publish: on a failed check (the store away), yes; the bus drops duplicates. */
  async #wanted(job: StepJob): Promise<boolean> {
    const check = this.#deps.stillWanted;
    if (!check) return true;
    return check(job).catch(() => true);
  }

  /**
   * Ends every retry at its next try. Not waited for: a try may be waiting for
   * the connection, and the step is safe in the store (its due time).
   */
  stop(): void {
    this.#stopped = true;
  }
}
