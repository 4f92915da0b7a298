/**
 * Attempt fencing: whether an agent may start a step job it was handed, and
 * for how long. Pure; the agent SDK applies it to every delivery before the
 * handler runs, and the executor's goal reducer keeps the other half of the
 * bargain (it starts the next attempt only after this one's deadline).
 *
 * A job runs only
 * - before its goal's deadline and before its attempt's deadline, so an attempt
 *   the executor has given up on (superseded) never starts anywhere; and
 * - on its first delivery or after a clean hand-back. A redelivery whose
 *   previous delivery was lost — the agent holding it crashed, was killed, ran
 *   out of memory, stalled or lost its connection — is refused: the job may have
 *   run (or may still run) there, and a job that kills its agent must not kill
 *   the next one.
 * The handler's time limit is the earliest of the step timeout, the attempt's
 * deadline and the goal's deadline.
 *
 * @example
 * const a = admitJob({ nowMs: Date.now(), attemptDeadlineMs, goalDeadlineMs, timeoutMs, previous: "none" });
 * if (a.run) runHandler(a.limitMs); else report(a.failure);
 */
import type { PreviousDelivery } from "./job-bus.js";

/** Code of the failure reported for an attempt whose agent stopped during the job. */
export const agentLostCode = "AGENT_LOST";

/**
 * Room for clock skew between hosts: the executor declares an attempt over this
 * long after its deadline, when no agent can still be running it.
 */
export const attemptFenceGraceMs = 1_000;

export interface JobClock {
  nowMs: number;
  /** The attempt's deadline; undefined for jobs from executors that set none. */
  attemptDeadlineMs?: number | undefined;
  /** The goal's deadline; undefined when none. */
  goalDeadlineMs?: number | undefined;
  /** The step timeout (the job's, else the agent's default). */
  timeoutMs: number;
  /** How the previous delivery of this message ended. */
  previous: PreviousDelivery;
}

/** A failure to report instead of running the handler. */
export interface Refusal {
  code: string;
  message: string;
  retryable: boolean;
}

export type Admission = { run: true; limitMs: number } | { run: false; failure: Refusal };

export function admitJob(job: JobClock): Admission {
  const { nowMs } = job;
  if (job.goalDeadlineMs !== undefined && nowMs >= job.goalDeadlineMs) {
    return refuse("DEADLINE_EXCEEDED", "the goal's deadline passed before the step started", false);
  }
  if (job.attemptDeadlineMs !== undefined && nowMs >= job.attemptDeadlineMs) {
    const late = nowMs - job.attemptDeadlineMs;
    return refuse(
      "DEADLINE_EXCEEDED",
      `the attempt reached its deadline ${late} ms before an agent could start it; it is not run`,
      true,
    );
  }
  if (job.previous === "lost") {
    return refuse(
      agentLostCode,
      "the agent running this attempt stopped before it finished (crashed, killed, out of memory or stalled); the job is not run again",
      true,
    );
  }
  const limit = Math.min(
    job.timeoutMs,
    (job.attemptDeadlineMs ?? Infinity) - nowMs,
    (job.goalDeadlineMs ?? Infinity) - nowMs,
  );
  return { run: true, limitMs: Math.max(1, limit) };
}

function refuse(code: string, message: string, retryable: boolean): Admission {
  return { run: false, failure: { code, message, retryable } };
}
