/**
 * Small helpers for async-iterable streams: observing their end, and reading
 * one while honouring cancellation.
 */

/**
 * Passes `stream` through and calls `onEnd` exactly once: with undefined when
 * it completes, with the error when it fails, and with a cancellation error
 * when the consumer stops early. `mapError` may replace a thrown error.
 */
export async function* observeStream<T>(
  stream: AsyncIterable<T>,
  onEnd: (err: unknown) => void,
  mapError?: (err: unknown) => unknown,
): AsyncGenerator<T, void, undefined> {
  let ended = false;
  try {
    yield* stream;
    ended = true;
    onEnd(undefined);
  } catch (err) {
    ended = true;
    onEnd(err);
    throw mapError ? mapError(err) : err;
  } finally {
    if (!ended) onEnd(abandoned);
  }
}

/** What `observeStream` reports when the consumer stopped early. */
export const abandoned: Error = Object.assign(new Error("stream abandoned by its consumer"), {
  name: "AbortError",
});

/** Resolves when `signal` aborts (never rejects); `dispose` removes the listener. */
export function abortPromise(signal: AbortSignal): { promise: Promise<void>; dispose: () => void } {
  let dispose = () => {};
  const promise = new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => resolve();
    signal.addEventListener("abort", onAbort, { once: true });
    dispose = () => signal.removeEventListener("abort", onAbort);
  });
  return { promise, dispose };
}
