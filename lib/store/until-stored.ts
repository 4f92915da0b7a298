/**
 * A write that must not be lost to a database outage (a learning outcome, an
 * agent's step result) is tried again with backoff for as long as the failure
 * is passing (the database away, a serialization conflict: a retryable
 * `MeshError`), the delivery kept alive meanwhile, instead of burning the
 * message's redeliveries into the dead letters; only a failure that can never
 * succeed (a malformed message) reaches the caller at once.
 *
 * @example
 * await untilStored(() => engine.record(d.data), { working: () => d.working(), signal });
 * d.ack();
 */
import { MeshError } from "../errors/mesh-error.js";
import type { Logger } from "../log/logger.js";

export interface UntilStoredOptions {
  /** Keeps the delivery from being redelivered: called every second once a try failed. */
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
  // Covers the waits and the tries alike: a try against a database that does not
  // answer can take longer than a consumer's ack wait.
  let keepAlive: NodeJS.Timeout | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (err) {
        if (!MeshError.from(err).retryable || options.signal.aborted) throw err;
        if (attempt === 1 || attempt % 10 === 0) {
          options.log?.warn({ err, attempt }, "not stored yet; retrying");
        }
        options.working();
        keepAlive ??= setInterval(options.working, 1_000);
        await sleep(delay(attempt), options.signal);
      }
    }
  } finally {
    clearInterval(keepAlive);
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
