/**
 * The training schedule: a cron expression (5 or 6 fields, croner syntax),
 * nightly by default, validated once and asked for its next run.
 *
 * @example
 * nextTrainingRun(DEFAULT_TRAINING_SCHEDULE, new Date("2025-01-01T12:00:00Z"))
 * // → 2025-01-02T03:00:00.000Z
 */
import { Cron } from "croner";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";

/** Every night at 03:00 (in the schedule's time zone, UTC by default). */
export const DEFAULT_TRAINING_SCHEDULE = "0 3 * * *";

export interface ScheduleOptions {
  /** IANA time zone; default "UTC". */
  timezone?: string;
}

/** A parsed schedule that never fires by itself (the caller owns timers). */
export interface TrainingSchedule {
  readonly expression: string;
  /** The first run strictly after `after`; undefined if the pattern never fires again. */
  next(after: Date): Date | undefined;
}

/** Parses a cron expression; INVALID_ARGUMENT with croner's message when it is not one. */
export function parseSchedule(
  expression: string = DEFAULT_TRAINING_SCHEDULE,
  options: ScheduleOptions = {},
): TrainingSchedule {
  let cron: Cron;
  try {
    cron = new Cron(expression.trim(), {
      paused: true,
      timezone: options.timezone ?? "UTC",
      mode: "5-or-6-parts",
    });
  } catch (err) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid training schedule "${expression}": ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  return {
    expression,
    next: (after) => cron.nextRun(after) ?? undefined,
  };
}

/** The next training run after `after` for a cron expression. */
export function nextTrainingRun(
  expression: string,
  after: Date,
  options: ScheduleOptions = {},
): Date | undefined {
  return parseSchedule(expression, options).next(after);
}
