/**
 * One PostgreSQL LISTEN/NOTIFY channel of the store's schema, for replicas
 * that keep something in memory and must hear when another replica changes
 * it (the registry's agent feed, the planner's playbook cache).
 *
 * Each channel holds one listening connection taken from the store's pool
 * (or, with `outsidePool`, one of its own, for a store whose pool may be a
 * single connection), however many subscribers it serves. Notifications sent while that
 * connection is down are lost: the channel reconnects with backoff and, once
 * listening again, tells subscribers (`resync`) so they can drop or re-read
 * what they hold; `listening()` is false meanwhile so a cache knows not to
 * trust itself.
 *
 * The channel name includes the store's schema, so test runs (and meshes)
 * sharing one database do not hear each other; `channelName` gives the same
 * name to a trigger that notifies it (see migration 0013).
 *
 * @example
 * const channel = createNotifyChannel({ store, name: "agentmesh_agents", log });
 * await channel.start();
 * channel.subscribe((e) => e.type === "resync" ? reload() : changed(e.payload));
 * await channel.notify("registered:agent-1");
 * await channel.sync(); // every notification committed before this has been received
 */
import type { Logger } from "../log/logger.js";
import type { Store } from "./store.js";

/** What subscribers receive: a payload, or `resync` after notifications may have been lost. */
export type NotifyEvent = { type: "notification"; payload: string } | { type: "resync" };

export interface NotifyChannel {
  /** The channel's full name (`<name>_<schema>`, at most 63 bytes). */
  readonly channel: string;
  /** Starts listening; resolves once the LISTEN is in place. */
  start(): Promise<void>;
  /** True while the LISTEN is in place: nothing sent meanwhile was missed. */
  listening(): boolean;
  /** Notifies every replica (this one included). */
  notify(payload: string): Promise<void>;
  /**
   * Resolves once every notification committed before the call has reached
   * the subscribers: one round trip on the listening connection, whose
   * server sends the notifications it was signalled before the answer
   * (calls while one is under way share the next). Rejects when not
   * listening or the connection fails.
   */
  sync(): Promise<void>;
  /** Receives every notification; returns the unsubscribe function. */
  subscribe(listener: (event: NotifyEvent) => void): () => void;
  stop(): Promise<void>;
}

export interface NotifyChannelOptions {
  store: Store;
  /** Channel prefix; the schema is appended. */
  name: string;
  log: Logger;
  /** Delay before re-listening after the connection drops; default 1000 ms. */
  reconnectMs?: number;
  /** Listen on a connection opened for it rather than one of the pool's; default false. */
  outsidePool?: boolean;
}

/** The slice of a node-postgres client the channel uses. */
interface PgClient {
  query(sql: string): Promise<unknown>;
  on(event: "notification", fn: (msg: { channel: string; payload?: string }) => void): void;
  on(event: "error" | "end", fn: (err?: Error) => void): void;
  removeAllListeners(event: string): void;
}
interface KnexPool {
  acquireConnection(): Promise<PgClient>;
  releaseConnection(connection: PgClient): Promise<void>;
  /** A connection outside the pool (knex opens one to cancel a query). */
  acquireRawConnection(): Promise<PgClient>;
  destroyRawConnection(connection: PgClient): Promise<void>;
}

/** The channel `name` gets in the store's schema (what a trigger must notify). */
export function channelName(store: Store, name: string): string {
  const schema = String(store.orm.config.get("schema") ?? "public");
  return `${name}_${schema}`.slice(0, 63);
}

export function createNotifyChannel(options: NotifyChannelOptions): NotifyChannel {
  const { store, log } = options;
  const channel = channelName(store, options.name);
  const listeners = new Set<(event: NotifyEvent) => void>();
  const knex = store.orm.em.getConnection().getKnex().client as unknown as KnexPool;
  const pool = options.outsidePool
    ? {
        acquireConnection: () => knex.acquireRawConnection(),
        releaseConnection: (c: PgClient) => knex.destroyRawConnection(c),
      }
    : knex;
  let client: PgClient | undefined;
  let live = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const emit = (event: NotifyEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        log.warn({ err, channel }, "notify channel listener failed");
      }
    }
  };

  const listen = async (): Promise<void> => {
    const c = await pool.acquireConnection();
    if (stopped) {
      // Stopped while connecting: a connection outside the pool would keep the process alive.
      await pool.releaseConnection(c).catch(() => undefined);
      return;
    }
    c.on("notification", (msg) => {
      if (msg.channel === channel && msg.payload !== undefined) {
        emit({ type: "notification", payload: msg.payload });
      }
    });
    const lost = (err?: Error) => {
      if (client !== c) return;
      client = undefined;
      live = false;
      c.removeAllListeners("notification");
      pool.releaseConnection(c).catch(() => undefined);
      if (stopped) return;
      log.warn({ err, channel }, "lost the listening connection; reconnecting");
      schedule();
    };
    c.on("error", lost);
    c.on("end", lost);
    client = c;
    try {
      await c.query(`listen "${channel}"`);
      live = client === c;
    } catch (err) {
      lost(err as Error);
      throw err;
    }
  };

  const schedule = () => {
    timer = setTimeout(() => {
      timer = undefined;
      listen().then(
        () => emit({ type: "resync" }),
        // PostgreSQL still away (no connection to take): try again, until stopped.
        () => retry(),
      );
    }, options.reconnectMs ?? 1000);
    timer.unref();
  };
  const retry = () => {
    if (!stopped && timer === undefined && client === undefined) schedule();
  };

  // A round trip sent after the caller's call began, shared by every caller waiting for one.
  let syncing: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const roundTrip = async () => {
    const c = client;
    if (!live || c === undefined) throw new Error(`not listening on ${channel}`);
    // LISTEN again: a no-op that keeps the connection's query in `pg_stat_activity` the LISTEN.
    await c.query(`listen "${channel}"`);
  };
  const sync = (): Promise<void> => {
    if (syncing === undefined) {
      syncing = roundTrip().finally(() => {
        syncing = undefined;
      });
      return syncing;
    }
    // The one under way may have been sent before this call: wait for the next.
    queued ??= syncing
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return sync();
      });
    return queued;
  };

  return {
    channel,
    sync,
    async start() {
      stopped = false;
      try {
        await listen();
      } catch (err) {
        // Listening later is still worth it: subscribers hear `resync` when it starts.
        retry();
        throw err;
      }
    },
    listening: () => live,
    async notify(payload) {
      await store.orm.em
        .fork()
        .getConnection()
        .execute("select pg_notify(?, ?)", [channel, payload]);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop() {
      stopped = true;
      live = false;
      clearTimeout(timer);
      const c = client;
      client = undefined;
      if (c) {
        c.removeAllListeners("notification");
        await c.query(`unlisten "${channel}"`).catch(() => undefined);
        await pool.releaseConnection(c).catch(() => undefined);
      }
      listeners.clear();
    },
  };
}
