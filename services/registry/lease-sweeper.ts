/**
 * The lease sweeper: every replica runs one. Each tick claims agents whose
 * lease ran out (`store.agents.expireLeases`, `FOR UPDATE SKIP LOCKED`, so two
 * replicas never withdraw the same agent twice), audits each expiry and tells
 * watchers on every replica.
 *
 * @example
 * const sweeper = startLeaseSweeper({ store, feed, log, intervalMs: 1000 });
 * await sweeper.stop();
 */
import { AgentChangeKind } from "../../gen/agentmesh/v1/registry_pb.js";
import type { Logger } from "../../lib/log/logger.js";
import { registrationEvent, type Store } from "../../lib/store/index.js";
import type { AgentFeed } from "./agent-feed.js";

export interface LeaseSweeperOptions {
  store: Store;
  feed: AgentFeed;
  log: Logger;
  /** Time between sweeps; default 1000 ms. */
  intervalMs?: number;
  /** Agents expired per sweep at most; default 100 (the next tick takes the rest). */
  batch?: number;
}

export interface LeaseSweeper {
  /** Runs one sweep now; resolves to the number of agents expired. */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

export function startLeaseSweeper(options: LeaseSweeperOptions): LeaseSweeper {
  const { store, feed, log } = options;
  let running: Promise<number> | undefined;
  let stopped = false;

  const sweepOnce = async (): Promise<number> => {
    const expired = await store.agents.expireLeases({ limit: options.batch ?? 100 });
    for (const agent of expired) {
      log.info({ agentId: agent.id, name: agent.name }, "agent lease expired");
      await store.audit
        .append(
          registrationEvent({
            actor: "system",
            change: "expired",
            agentId: agent.id,
            details: { name: agent.name, instanceId: agent.instanceId, spiffeId: agent.spiffeId },
          }),
        )
        .catch((err: unknown) => log.warn({ err, agentId: agent.id }, "audit of expiry failed"));
      await feed
        .publish(AgentChangeKind.EXPIRED, agent.id)
        .catch((err: unknown) => log.warn({ err, agentId: agent.id }, "expiry notify failed"));
    }
    return expired.length;
  };

  const sweep = (): Promise<number> => {
    // One sweep at a time per replica; a tick during a slow sweep joins it.
    running ??= sweepOnce().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(() => {
    if (stopped) return;
    sweep().catch((err: unknown) => log.warn({ err }, "lease sweep failed"));
  }, options.intervalMs ?? 1000);
  timer.unref();

  return {
    sweep,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
