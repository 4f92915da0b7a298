/**
 * Whether the database answers, as the store has seen it. Every call that
 * fails with UNAVAILABLE turns the status to `not_serving` and starts a probe
 * (`select 1` every `probeIntervalMs`) that turns it back to `serving` as soon
 * as the database answers again, so health checks and readiness probes follow
 * the database without anyone polling it on the hot path.
 *
 * @example
 * store.health.onChange((status) => grpcHealth.set("", status === "serving"));
 * await store.health.check(); // probes now
 */

/** `serving` while the database answers; `not_serving` after a call found it unreachable. */
export type StoreHealthStatus = "serving" | "not_serving";

export interface StoreHealth {
  /** The current status, without I/O. */
  readonly status: StoreHealthStatus;
  /** Probes the database now and returns (and records) the result. */
  check(): Promise<StoreHealthStatus>;
  /** Calls `listener` on every change; returns the function that unsubscribes. */
  onChange(listener: (status: StoreHealthStatus) => void): () => void;
}

/** @internal The store's health state machine. */
export class HealthTracker implements StoreHealth {
  #status: StoreHealthStatus = "serving";
  #listeners = new Set<(status: StoreHealthStatus) => void>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly probe: () => Promise<void>,
    private readonly probeIntervalMs = 1000,
  ) {}

  get status(): StoreHealthStatus {
    return this.#status;
  }

  async check(): Promise<StoreHealthStatus> {
    try {
      await this.probe();
      this.succeeded();
    } catch {
      this.failed();
    }
    return this.#status;
  }

  onChange(listener: (status: StoreHealthStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A call reached the database. */
  succeeded(): void {
    if (this.#status === "serving") return;
    this.#set("serving");
    this.#stopProbing();
  }

  /** A call found the database unreachable. */
  failed(): void {
    if (this.#closed) return;
    if (this.#status === "not_serving") return;
    this.#set("not_serving");
    let probing = false;
    this.#timer = setInterval(() => {
      // A probe may take longer than the interval while connects time out; never stack them.
      if (probing) return;
      probing = true;
      this.probe()
        .then(
          () => this.succeeded(),
          () => undefined,
        )
        .finally(() => {
          probing = false;
        });
    }, this.probeIntervalMs);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    this.#stopProbing();
    this.#listeners.clear();
  }

  #stopProbing(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #set(status: StoreHealthStatus): void {
    this.#status = status;
    for (const listener of this.#listeners) {
      try {
        listener(status);
      } catch {
        // A listener's failure must not break the store.
      }
    }
  }
}
