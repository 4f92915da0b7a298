/**
 * Time as the executor sees it: the current moment and timers, injected so a
 * test can drive due times and ticks without waiting on the wall clock.
 * Timers never keep the process alive.
 *
 * @example
 * const clock = systemClock;
 * const cancel = clock.setTimeout(() => engine.kick(), 200);
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; the returned function cancels it. */
  setTimeout(fn: () => void, ms: number): () => void;
  /** Calls `fn` every `ms`; the returned function stops it. */
  setInterval(fn: () => void, ms: number): () => void;
}

/** The wall clock and Node's timers (unref'd). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref();
    return () => clearInterval(t);
  },
};

/** Resolves after `ms` on `clock`. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}
