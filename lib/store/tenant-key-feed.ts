/**
 * Tells every process sharing the database that a tenant's data keys or
 * encryption mode changed (an erasure, a rotation, a new mode), over
 * PostgreSQL LISTEN/NOTIFY, so each forgets what it cached of that tenant at
 * once instead of when its cache runs out.
 *
 * Each store listens on one connection of its own, outside the pool (a pool
 * of one would otherwise be taken), opened on first use of the cipher (which
 * waits for it, up to 2 s), so a process that never touches a payload never
 * opens it. The feed is `live` once its own test notification came back on
 * that connection: behind a pooler in transaction mode, where LISTEN cannot
 * work, it never is. While it is live the cipher keeps what it caches until
 * told; while it is not (also while it reconnects after losing the
 * connection) for a few seconds only, and when it becomes live again it
 * forgets everything, since notifications may have been missed meanwhile.
 *
 * The channel name includes the store's schema, so stores on other schemas
 * of one database do not hear each other.
 *
 * @example
 * const feed = new TenantKeyFeed({ connect, disconnect, notify, channel, onChange, onGap });
 * await feed.start();
 * await feed.announce("acme"); // every live store forgets acme's keys
 */
import type { Logger } from "../log/logger.js";

/** The slice of a node-postgres client the feed uses. */
export interface ListeningClient {
  query(sql: string): Promise<unknown>;
  on(event: "notification", fn: (msg: { channel: string; payload?: string }) => void): void;
  on(event: "error" | "end", fn: (err?: Error) => void): void;
  removeAllListeners(event?: string): void;
}

export interface TenantKeyFeedOptions {
  /** Opens a connection outside the pool. */
  connect(): Promise<ListeningClient>;
  disconnect(client: ListeningClient): Promise<void>;
  /** Sends a notification (through the pool). */
  notify(channel: string, payload: string): Promise<void>;
  channel: string;
  /** A tenant's keys or mode changed (here or in another process). */
  onChange(tenantId: string): void;
  /** Notifications may have been missed: forget everything. */
  onGap(): void;
  /** Delay before listening again after the connection is lost; default 1000 ms. */
  reconnectMs?: number;
  log?: Logger;
}

/** The payload of the feed's own test notification (tenant ids never start with `:`). */
const probe = ":probe";
/** How long `announce` waits for its own notification to come back. */
const echoWaitMs = 2000;
/** How long the first use waits for the feed to be live. */
const readyWaitMs = 2000;

export class TenantKeyFeed {
  readonly #o: TenantKeyFeedOptions;
  #client: ListeningClient | undefined;
  #live = false;
  #ready: Promise<void> | undefined;
  /** Resolves `#ready`: the first try at listening is over. */
  #firstTry: () => void = () => undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  /** Waiters for a notification of a tenant to come back. */
  readonly #echoes = new Map<string, Set<() => void>>();

  constructor(options: TenantKeyFeedOptions) {
    this.#o = options;
  }

  /** Whether changes announced anywhere reach this process now. */
  get live(): boolean {
    return this.#live;
  }

  /**
   * Starts listening, once; resolves when the feed is live, or when its first
   * try failed or took longer than `readyWaitMs` (it keeps trying in the
   * background). Later calls return the same promise.
   */
  start(): Promise<void> {
    if (!this.#ready) {
      this.#ready = new Promise<void>((resolve) => {
        this.#firstTry = resolve;
        setTimeout(resolve, readyWaitMs).unref();
      });
      if (!this.#closed) void this.#listen();
    }
    return this.#ready;
  }

  /**
   * Tells every process (this one included) that the tenant's keys or mode
   * changed, after the change committed. When this feed is live it waits for
   * its own notification to come back, so PostgreSQL has sent it to every
   * listener before this returns.
   */
  async announce(tenantId: string): Promise<void> {
    const echoed = this.#live ? this.#echo(tenantId) : undefined;
    await this.#o.notify(this.#o.channel, tenantId);
    await echoed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#live = false;
    clearTimeout(this.#timer);
    const c = this.#client;
    this.#client = undefined;
    if (c) {
      c.removeAllListeners();
      c.on("error", () => undefined);
      await this.#o.disconnect(c).catch(() => undefined);
    }
    for (const waiters of this.#echoes.values()) for (const done of waiters) done();
    this.#echoes.clear();
  }

  #echo(tenantId: string): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.#echoes.get(tenantId) ?? new Set();
      this.#echoes.set(tenantId, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#echoes.get(tenantId) === waiters) {
          this.#echoes.delete(tenantId);
        }
        resolve();
      };
      const timer = setTimeout(done, echoWaitMs);
      timer.unref();
      waiters.add(done);
    });
  }

  #heard(payload: string): void {
    if (payload === probe) {
      if (!this.#live) {
        this.#live = true;
        this.#o.onGap(); // what was cached before now may have missed a change
        this.#firstTry();
      }
    } else {
      this.#o.onChange(payload);
    }
    for (const done of [...(this.#echoes.get(payload) ?? [])]) done();
  }

  async #listen(): Promise<void> {
    let c: ListeningClient;
    try {
      c = await this.#o.connect();
    } catch (err) {
      this.#o.log?.debug({ err }, "tenant key feed could not connect; retrying");
      this.#firstTry();
      this.#retry();
      return;
    }
    if (this.#closed) {
      await this.#o.disconnect(c).catch(() => undefined);
      return;
    }
    const lost = (err?: Error) => {
      if (this.#client !== c) return;
      this.#client = undefined;
      this.#live = false;
      this.#o.onGap();
      c.removeAllListeners();
      c.on("error", () => undefined);
      this.#o.disconnect(c).catch(() => undefined);
      this.#firstTry();
      if (this.#closed) return;
      this.#o.log?.warn({ err }, "tenant key feed lost its connection; listening again");
      this.#retry();
    };
    c.on("notification", (msg) => {
      if (msg.channel === this.#o.channel) this.#heard(msg.payload ?? "");
    });
    c.on("error", lost);
    c.on("end", lost);
    this.#client = c;
    try {
      await c.query(`listen "${this.#o.channel}"`);
      await c.query(`select pg_notify('${this.#o.channel}', '${probe}')`);
    } catch (err) {
      lost(err as Error);
    }
  }

  #retry(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#listen(), this.#o.reconnectMs ?? 1000);
    this.#timer.unref();
  }
}
