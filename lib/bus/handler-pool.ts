/**
 * Runs delivery handlers with a concurrency limit and the shared settle rules
 * (both bus implementations use it, so they behave the same): a handler that
 * returns without settling acks, one that throws naks with backoff, and on
 * stop the unfinished deliveries are handed back after the grace period.
 */
import type { Logger } from "../log/logger.js";
import type { Delivery, DeliveryHandler, StopResult } from "./job-bus.js";

export class HandlerPool<T> {
  readonly #handler: DeliveryHandler<T>;
  readonly #backoff: (deliveryCount: number) => number;
  readonly #log: Logger;
  readonly #onFree: (() => void) | undefined;
  readonly #running = new Map<Delivery<T>, Promise<void>>();
  #waiters: Array<() => void> = [];
  readonly concurrency: number;

  constructor(
    handler: DeliveryHandler<T>,
    concurrency: number,
    backoff: (deliveryCount: number) => number,
    log: Logger,
    /** Called each time a handler finishes and its slot is free (after `whenFree` waiters). */
    onFree?: () => void,
  ) {
    this.#handler = handler;
    this.#onFree = onFree;
    this.concurrency = concurrency;
    this.#backoff = backoff;
    this.#log = log;
  }

  get inFlight(): number {
    return this.#running.size;
  }

  get free(): number {
    return this.concurrency - this.#running.size;
  }

  /** Resolves when a slot is free. */
  whenFree(): Promise<void> {
    if (this.free > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Starts the handler on a delivery; the caller made sure a slot is free. */
  run(delivery: Delivery<T>): void {
    const done = this.#invoke(delivery).finally(() => {
      this.#running.delete(delivery);
      const next = this.#waiters.shift();
      next?.();
      this.#onFree?.();
    });
    this.#running.set(delivery, done);
  }

  async #invoke(delivery: Delivery<T>): Promise<void> {
    try {
      await this.#handler(delivery);
      if (!delivery.settled) delivery.ack();
    } catch (err) {
      if (!delivery.settled) {
        this.#log.warn(
          {
            err,
            subject: delivery.subject,
            msgId: delivery.msgId,
            delivery: delivery.deliveryCount,
          },
          "handler failed; message handed back with backoff",
        );
        delivery.nak(this.#backoff(delivery.deliveryCount));
      }
    }
  }

  /** Waits up to `graceMs` for running handlers; naks the deliveries still unsettled then. */
  async drain(graceMs: number): Promise<StopResult> {
    const running = [...this.#running.entries()];
    if (running.length === 0) return { finished: 0, handedBack: 0 };
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([Promise.all(running.map(([, p]) => p)), grace]);
    clearTimeout(timer);
    let handedBack = 0;
    for (const [delivery] of running) {
      if (!delivery.settled) {
        delivery.nak(0);
        handedBack++;
      }
    }
    // Wake anyone still waiting for a slot so their loops can observe the stop.
    for (const w of this.#waiters.splice(0)) w();
    return { finished: running.length - handedBack, handedBack };
  }
}
