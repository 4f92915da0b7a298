/**
 * Group commit: items that wait together are committed together, one batch
 * at a time. No timer holds an item: when nothing is being committed, an item
 * goes with whatever arrived in the same turn of the event loop (the outcomes
 * of one socket read); while a batch is being committed, the items arriving
 * meanwhile wait and form the next one (at most `maxBatch`). So batches are
 * one item when idle and grow with the rate, and a hot row written by every
 * item is written once per batch instead of once per item.
 *
 * Two items with the same key never share a batch (the second waits for the
 * next), so a batch can rely on distinct keys.
 *
 * @example
 * const outcomes = new GroupCommit({
 *   key: (o) => o.goalId,
 *   maxBatch: 64,
 *   commit: async (batch) => batch.map(() => ({ ok: true, value: true })),
 * });
 * const recorded = await outcomes.add(outcome); // settles when its batch committed
 */

/** How one item of a batch ended. */
export type Settled<R> = { ok: true; value: R } | { ok: false; error: unknown };

export interface GroupCommitOptions<T, R> {
  /**
   * Commits a batch and tells how each item ended, in order. Throwing fails
   * every item of the batch with that error.
   */
  commit(items: readonly T[]): Promise<readonly Settled<R>[]>;
  /** Items with equal keys go in different batches. */
  key(item: T): string;
  /** Most items in one batch; default 64. */
  maxBatch?: number;
}

interface Waiting<T, R> {
  item: T;
  resolve(value: R): void;
  reject(err: unknown): void;
}

export class GroupCommit<T, R> {
  readonly #options: GroupCommitOptions<T, R>;
  readonly #maxBatch: number;
  #waiting: Waiting<T, R>[] = [];
  #scheduled = false;
  #committing = false;
  /** Batches committed and the items in them (the mean batch size is their ratio). */
  readonly stats = { batches: 0, items: 0, largest: 0 };

  constructor(options: GroupCommitOptions<T, R>) {
    this.#options = options;
    this.#maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 64));
  }

  /** Queues an item; settles when its batch has been committed. */
  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (!this.#committing && !this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => {
          this.#scheduled = false;
          void this.#run();
        });
      }
    });
  }

  async #run(): Promise<void> {
    if (this.#committing) return;
    this.#committing = true;
    try {
      while (this.#waiting.length > 0) await this.#commitNext();
    } finally {
      this.#committing = false;
    }
  }

  async #commitNext(): Promise<void> {
    const batch: Waiting<T, R>[] = [];
    const later: Waiting<T, R>[] = [];
    const keys = new Set<string>();
    for (const w of this.#waiting) {
      const key = this.#options.key(w.item);
      if (batch.length >= this.#maxBatch || keys.has(key)) {
        later.push(w);
        continue;
      }
      keys.add(key);
      batch.push(w);
    }
    this.#waiting = later;
    this.stats.batches++;
    this.stats.items += batch.length;
    this.stats.largest = Math.max(this.stats.largest, batch.length);
    let settled: readonly Settled<R>[];
    try {
      settled = await this.#options.commit(batch.map((w) => w.item));
    } catch (error) {
      settled = batch.map(() => ({ ok: false, error }));
    }
    batch.forEach((w, i) => {
      const s = settled[i] ?? { ok: false, error: new Error("group commit: item not settled") };
      if (s.ok) w.resolve(s.value);
      else w.reject(s.error);
    });
  }
}
