/**
 * Group commit: writes that wait at the same moment go to PostgreSQL together,
 * as one statement. A write finding nothing in flight starts at once (a lone
 * request waits for no timer); the writes that queue while a statement is in
 * flight become the next statement, so under load the cost of a statement is
 * shared by everything that arrived during the previous one, and at rest
 * nothing changes. One statement in flight at a time suits writes that
 * serialize on one row anyway (each goal creation extends the audit chain).
 *
 * `write` answers each item's own outcome at its index, an `Error` for an item
 * that failed alone; a throw fails the whole batch.
 *
 * @example
 * const creations = new GroupCommit((batch) => store.createGoals(batch));
 * const { goal, created } = await creations.add(await goals.prepare(newGoal, events, audit));
 */

export interface GroupCommitOptions {
  /** Most items in one statement. Default 64. */
  maxBatch?: number;
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
  readonly #maxBatch: number;
  readonly #onBatch: ((size: number) => void) | undefined;
  #queue: Waiting<I, O>[] = [];
  #running = false;

  constructor(write: (items: I[]) => Promise<(O | Error)[]>, options: GroupCommitOptions = {}) {
    this.#write = write;
    this.#maxBatch = Math.max(1, options.maxBatch ?? 64);
    this.#onBatch = options.onBatch;
  }

  /** Writes `item` with whatever else waits; settles with its own outcome. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      // Items added in the same turn of the event loop join; nothing waits longer.
      if (!this.#running) {
        this.#running = true;
        queueMicrotask(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#onBatch?.(batch.length);
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
}
