/**
 * Tells every process sharing the database that a tenant's data keys or
 * encryption mode changed (an erasure, a rotation, a new mode), on the
 * store's `agentmesh_tenant_keys` notify channel, so each forgets what it
 * cached of that tenant at once instead of when its cache runs out.
 *
 * The channel listens on a connection of its own, outside the pool (a pool of
 * one would otherwise be taken), opened on first use of the cipher (which
 * waits for it, up to 2 s), so a process that never touches a payload never
 * opens it. The feed is `live` once its own probe came back on the channel:
 * behind a pooler in transaction mode, where LISTEN cannot work, it never
 * is. While it is live the cipher keeps what it caches until told; while it
 * is not (also while the channel reconnects) for a few seconds only, and when
 * it becomes live again it forgets everything, since notifications may have
 * been missed meanwhile.
 *
 * @example
 * const feed = new TenantKeyFeed({ channel, onChange, onGap });
 * await feed.start();
 * await feed.announce("acme"); // every live store forgets acme's keys
 */
import type { NotifyChannel } from "./notify-channel.js";

export interface TenantKeyFeedOptions {
  /** The channel, not started yet (`createNotifyChannel`). */
  channel: NotifyChannel;
  /** A tenant's keys or mode changed (here or in another process). */
  onChange(tenantId: string): void;
  /** Notifications may have been missed: forget everything. */
  onGap(): void;
  /** Delay before trying again when the channel could not start; default 1000 ms. */
  retryMs?: number;
}

/** The payload of the feed's own probe (tenant ids never start with `:`). */
const probe = ":probe";
/** How long `announce` waits for its own notification to come back. */
const echoWaitMs = 2000;
/** How long the first use waits for the feed to be live. */
const readyWaitMs = 2000;

export class TenantKeyFeed {
  readonly #o: TenantKeyFeedOptions;
  /** The probe came back since the channel last (re)started listening. */
  #confirmed = false;
  #ready: Promise<void> | undefined;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  /** Waiters for a notification to come back, by payload. */
  readonly #echoes = new Map<string, Set<() => void>>();

  constructor(options: TenantKeyFeedOptions) {
    this.#o = options;
    options.channel.subscribe((e) => {
      if (e.type === "resync") this.#listening();
      else this.#heard(e.payload);
    });
  }

  /** Whether changes announced anywhere reach this process now. */
  get live(): boolean {
    return this.#confirmed && this.#o.channel.listening();
  }

  /**
   * Starts listening, once; resolves when the feed is live, or when its first
   * try failed or took longer than 2 s (it keeps trying in the background).
   * Later calls return the same promise.
   */
  start(): Promise<void> {
    this.#ready ??= Promise.race([
      this.#start().then(() => this.#echo(probe, readyWaitMs)),
      new Promise<void>((resolve) => setTimeout(resolve, readyWaitMs).unref()),
    ]);
    return this.#ready;
  }

  /**
   * Tells every process (this one included) that the tenant's keys or mode
   * changed, after the change committed. When this feed is live it waits for
   * its own notification to come back, so PostgreSQL has sent it to every
   * listener before this returns.
   */
  async announce(tenantId: string): Promise<void> {
    const echoed = this.live ? this.#echo(tenantId, echoWaitMs) : undefined;
    await this.#o.channel.notify(tenantId);
    await echoed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#confirmed = false;
    clearTimeout(this.#timer);
    await this.#o.channel.stop();
    for (const waiters of this.#echoes.values()) for (const done of waiters) done();
    this.#echoes.clear();
  }

  /** Starts the channel; when it cannot, tries again in the background. */
  async #start(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#o.channel.start();
      this.#listening();
    } catch {
      this.#timer = setTimeout(() => void this.#start(), this.#o.retryMs ?? 1000);
      this.#timer.unref();
    }
  }

  /** The channel listens (again): send the probe; live once it is back. */
  #listening(): void {
    this.#confirmed = false;
    this.#o.onGap();
    this.#o.channel.notify(probe).catch(() => undefined);
  }

  #heard(payload: string): void {
    if (payload === probe) {
      if (!this.#confirmed) {
        this.#confirmed = true;
        this.#o.onGap(); // what was cached before now may have missed a change
      }
    } else {
      this.#o.onChange(payload);
    }
    for (const done of [...(this.#echoes.get(payload) ?? [])]) done();
  }

  #echo(payload: string, waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.#echoes.get(payload) ?? new Set();
      this.#echoes.set(payload, waiters);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#echoes.get(payload) === waiters) {
          this.#echoes.delete(payload);
        }
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      timer.unref();
      waiters.add(done);
    });
  }
}
