/**
 * Outcomes are the learning service's only input: one lost to a database
 * outage is a statistic silently wrong. So a write that fails for a passing
 * reason (the database away, a serialization conflict: a retryable
 * `MeshError`) is tried again with backoff for as long as it takes, the
 * delivery kept alive meanwhile; only a failure that can never succeed
 * (a malformed outcome) reaches the caller at once.
 *
 * @example
 * await untilStored(() => engine.record(d.data), { working: () => d.working(), signal });
 * d.ack();
 */
import { MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";

export interface UntilStoredOptions {
  /** Called before each wait: keep the delivery from being redelivered meanwhile. */
  working(): void;
  /** Aborted when the service stops: the last error is thrown (the message goes back). */
  signal: AbortSignal;
  log?: Logger;
  /** Wait before try `attempt + 1`; default `retryDelayMs`. */
  delayMs?: (attempt: number) => number;
}

/** 250 ms doubling up to 5 s: a recovered database is used within seconds. */
export function retryDelayMs(attempt: number): number {
  return Math.min(250 * 2 ** Math.max(0, attempt - 1), 5_000);
}

/** Runs `write` until it succeeds or fails for good (see the module comment). */
export async function untilStored<T>(
  write: () => Promise<T>,
  options: UntilStoredOptions,
): Promise<T> {
  const delay = options.delayMs ?? retryDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (!MeshError.from(err).retryable || options.signal.aborted) throw err;
      if (attempt === 1 || attempt % 10 === 0) {
        options.log?.warn({ err, attempt }, "outcome not stored yet; retrying");
      }
      options.working();
      await sleep(delay(attempt), options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
