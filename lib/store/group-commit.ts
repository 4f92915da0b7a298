/**
 * Group commit: writes that wait at the same moment go to PostgreSQL together,
 * as one statement. A write finding nothing in flight goes at the end of the
 * current turn of the event loop with whatever else arrived in it (the
 * messages of one socket read; a lone request waits for no timer); the writes
 * that queue while a statement is in flight become the next statement, so
 * under load the cost of a statement, and of a hot row every write updates
 * (the audit chain's head, a strategy's statistics), is shared by everything
 * that arrived during the previous one, and at rest nothing changes.
 *
 * `write` answers each item's own outcome at its index, an `Error` for an item
 * that failed alone; a throw fails the whole batch. With `key`, two items with
 * equal keys never share a batch (the second waits for the next), so a batch
 * can rely on distinct keys.
 *
 * @example
 * const creations = new GroupCommit((batch) => store.createGoals(batch));
 * const { goal, created } = await creations.add(await goals.prepare(newGoal, events, audit));
 */

export interface GroupCommitOptions<I> {
  /** Most items in one statement. Default 64. */
  maxBatch?: number;
  /** Items with equal keys go in different batches. */
  key?(item: I): string;
  /** Called with the size of every batch written (a metric, a test's check). */
  onBatch?(size: number): void;
}

interface Waiting<I, O> {
  item: I;
  resolve(out: O): void;
  reject(err: unknown): void;
}

export class GroupCommit<I, O> {
  readonly #write: (items: I[]) => Promise<(O | Error)[]>;
  readonly #options: GroupCommitOptions<I>;
  readonly #maxBatch: number;
  #queue: Waiting<I, O>[] = [];
  #running = false;
  /** Batches written and the items in them (the mean batch size is their ratio). */
  readonly stats = { batches: 0, items: 0, largest: 0 };

  constructor(write: (items: I[]) => Promise<(O | Error)[]>, options: GroupCommitOptions<I> = {}) {
    this.#write = write;
    this.#options = options;
    this.#maxBatch = Math.max(1, Math.floor(options.maxBatch ?? 64));
  }

  /** Writes `item` with whatever else waits; settles with its own outcome. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#next();
      this.stats.batches++;
      this.stats.items += batch.length;
      this.stats.largest = Math.max(this.stats.largest, batch.length);
      this.#options.onBatch?.(batch.length);
      try {
        const out = await this.#write(batch.map((w) => w.item));
        batch.forEach((w, i) => {
          const o = out[i];
          if (o instanceof Error) w.reject(o);
          else if (o === undefined) w.reject(new Error("group commit: no outcome for an item"));
          else w.resolve(o);
        });
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.#running = false;
  }

  /** The next batch: at most `maxBatch` waiting items, no two with one key. */
  #next(): Waiting<I, O>[] {
    const { key } = this.#options;
    if (!key) return this.#queue.splice(0, this.#maxBatch);
    const batch: Waiting<I, O>[] = [];
    const later: Waiting<I, O>[] = [];
    const keys = new Set<string>();
    for (const w of this.#queue) {
      const k = key(w.item);
      if (batch.length >= this.#maxBatch || keys.has(k)) later.push(w);
      else {
        keys.add(k);
        batch.push(w);
      }
    }
    this.#queue = later;
    return batch;
  }
}
