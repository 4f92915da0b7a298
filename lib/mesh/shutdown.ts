/**
 * Graceful shutdown on SIGTERM / SIGINT: run the stop function once; a second
 * signal while stopping exits at once (the operator insists).
 *
 * @example
 * const done = onShutdownSignal(async () => { await running.stop(); });
 * await done; // resolves with the signal's name after `stop` finished
 */
export function onShutdownSignal(stop: () => Promise<void>): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.exit(130);
      }
      stopping = true;
      stop().then(
        () => resolve(signal),
        () => resolve(signal),
      );
    };
    process.on("SIGTERM", handler);
    process.on("SIGINT", handler);
  });
}
