/**
 * Agent changes across registry replicas, over PostgreSQL LISTEN/NOTIFY
 * (`lib/store/notify-channel.ts`).
 *
 * Why LISTEN/NOTIFY rather than polling `agents.updated_at`: the replica that
 * makes a change knows its kind (registered, expired, deregistered ...), a
 * notification carries it to every replica within milliseconds, and
 * `pg_notify` needs no new table or index. Each replica holds one listening
 * connection (taken from the store's pool) however many watchers it serves,
 * and loads a changed agent once per notification, not once per watcher.
 * Notifications sent while a replica's listening connection is down are lost;
 * the feed reconnects with backoff and tells subscribers (`resync`) so a
 * watch stream can re-send a snapshot rather than silently miss changes.
 *
 * The channel name includes the store's schema, so test runs (and meshes)
 * sharing one database do not hear each other.
 *
 * @example
 * const feed = createAgentFeed({ store, log });
 * await feed.start();
 * const off = feed.subscribe((change) => console.log(change.kind, change.agent?.agentId));
 * await feed.publish(AgentChangeKind.EXPIRED, agentId);
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AgentChangeKind,
  type WatchAgentsResponse,
  WatchAgentsResponseSchema,
} from "../../gen/agentmesh/v1/registry_pb.js";
import type { Logger } from "../../lib/log/logger.js";
import { createNotifyChannel, type Store } from "../../lib/store/index.js";
import { agentToMessage } from "./agent-message.js";

/** What subscribers receive: a change, or `resync` after notifications may have been lost. */
export type AgentFeedEvent = { type: "change"; change: WatchAgentsResponse } | { type: "resync" };

export interface AgentFeed {
  /** Starts listening; resolves once the LISTEN is in place. */
  start(): Promise<void>;
  /** Tells every replica (this one included) that an agent changed. */
  publish(kind: AgentChangeKind, agentId: string): Promise<void>;
  /** Receives every change; returns the unsubscribe function. */
  subscribe(listener: (event: AgentFeedEvent) => void): () => void;
  stop(): Promise<void>;
}

export interface AgentFeedOptions {
  store: Store;
  log: Logger;
  /** Channel prefix; the schema is appended. Default `agentmesh_agents`. */
  channel?: string;
  /** Delay before re-listening after the connection drops; default 1000 ms. */
  reconnectMs?: number;
}

const kindNames: Record<string, AgentChangeKind> = {
  registered: AgentChangeKind.REGISTERED,
  updated: AgentChangeKind.UPDATED,
  expired: AgentChangeKind.EXPIRED,
  deregistered: AgentChangeKind.DEREGISTERED,
};

export function createAgentFeed(options: AgentFeedOptions): AgentFeed {
  const { store, log } = options;
  const channel = createNotifyChannel({
    store,
    name: options.channel ?? "agentmesh_agents",
    log,
    ...(options.reconnectMs !== undefined ? { reconnectMs: options.reconnectMs } : {}),
  });
  const listeners = new Set<(event: AgentFeedEvent) => void>();

  const emit = (event: AgentFeedEvent) => {
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        log.warn({ err }, "agent feed listener failed");
      }
    }
  };

  const onNotification = async (payload: string) => {
    const sep = payload.indexOf(":");
    const kind = kindNames[payload.slice(0, sep)];
    const agentId = payload.slice(sep + 1);
    if (kind === undefined || !agentId) return;
    try {
      const record = await store.agents.find(agentId);
      if (!record) return;
      emit({
        type: "change",
        change: create(WatchAgentsResponseSchema, {
          kind,
          agent: agentToMessage(record),
          time: timestampFromMs(Date.now()),
        }),
      });
    } catch (err) {
      log.warn({ err, agentId }, "agent feed could not load a changed agent");
      emit({ type: "resync" });
    }
  };

  return {
    async start() {
      channel.subscribe((event) => {
        if (event.type === "resync") emit(event);
        else void onNotification(event.payload);
      });
      await channel.start();
    },
    async publish(kind, agentId) {
      const name = Object.keys(kindNames).find((k) => kindNames[k] === kind) ?? "updated";
      await channel.notify(`${name}:${agentId}`);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop() {
      await channel.stop();
      listeners.clear();
    },
  };
}
