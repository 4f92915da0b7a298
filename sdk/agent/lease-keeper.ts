/**
 * Keeps an agent registered: makes the registry calls the lease lifecycle
 * (`lease-lifecycle.ts`) asks for, one at a time, and feeds their outcomes
 * back. It never gives up while the agent runs: an outage of the registry or
 * its database ends with the agent registered again, same card, same instance id.
 *
 * @example
 * const lease = keepLease({ registry, card, instanceId, inFlight: () => 0, log });
 * await lease.registered; // the first registration (retried while the registry is unreachable)
 * lease.status().ready;
 * await lease.drain(); // one DRAINING heartbeat, no re-registration from now on
 * lease.stop();
 */
import type { AgentCard } from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import {
  type AgentStatus,
  initialLease,
  type LeaseCallKind,
  type LeaseEvent,
  type LeaseState,
  leaseStatus,
  nextLeaseCall,
  onLeaseEvent,
} from "./lease-lifecycle.js";
import type { RegistryLink } from "./registry-link.js";

export interface LeaseKeeperOptions {
  registry: RegistryLink;
  card: AgentCard;
  instanceId: string;
  /** Lease length to ask for; default: the registry's. */
  leaseTtlMs?: number;
  /** Jobs running now, reported with each heartbeat. */
  inFlight: () => number;
  log: Logger;
  /** Called after each change of status. */
  onStatus?: (status: AgentStatus) => void;
  now?: () => number;
  random?: () => number;
}

export interface LeaseKeeper {
  /** Resolves at the first registration; rejects when the registry refuses the card itself. */
  readonly registered: Promise<void>;
  /** The registry's id of this agent (stable per instance id across re-registrations). */
  readonly agentId: string;
  /** Whether the latest registration put the agent in probation (conformance examples to pass). */
  readonly probation: boolean;
  status(): AgentStatus;
  /** Heartbeats DRAINING once and stops re-registering. */
  drain(): Promise<void>;
  stop(): void;
}

/** The registry refusing the registration itself: retrying cannot help, so start-up fails. */
const refusedAtStart = new Set<Code>([Code.InvalidArgument, Code.Unimplemented]);

/** The lease length the lifecycle assumes before the registry grants one (the registry's default). */
const assumedLeaseTtlMs = 15_000;

export function keepLease(options: LeaseKeeperOptions): LeaseKeeper {
  const { registry, card, instanceId, log } = options;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  let state: LeaseState = initialLease({
    leaseTtlMs: options.leaseTtlMs ?? assumedLeaseTtlMs,
    at: now(),
  });
  let timer: NodeJS.Timeout | undefined;
  let calling: Promise<void> | undefined;
  let settleFirst!: { resolve: () => void; reject: (err: unknown) => void };
  const registered = new Promise<void>((resolve, reject) => {
    settleFirst = { resolve, reject };
  });
  let everRegistered = false;
  let probation = false;

  const apply = (event: LeaseEvent) => {
    const before = leaseStatus(state, now());
    state = onLeaseEvent(state, event);
    const after = leaseStatus(state, now());
    if (before.phase !== after.phase || before.ready !== after.ready) {
      log.info({ agentId: after.agentId, phase: after.phase, ready: after.ready }, "agent lease");
      options.onStatus?.(after);
    }
  };

  const call = async (kind: LeaseCallKind): Promise<void> => {
    const sentAt = now();
    try {
      if (kind === "register") {
        const r = await registry.register(card, {
          instanceId,
          ...(options.leaseTtlMs ? { leaseTtlMs: options.leaseTtlMs } : {}),
        });
        if (everRegistered && r.agentId !== state.agentId) {
          log.warn({ was: state.agentId, now: r.agentId }, "registry gave this agent a new id");
        }
        probation = r.probation === true;
        apply({
          type: "registered",
          agentId: r.agentId,
          leaseTtlMs: r.leaseTtlMs,
          sentAt,
          at: now(),
        });
        if (!everRegistered) {
          everRegistered = true;
          settleFirst.resolve();
        } else log.info({ agentId: r.agentId }, "agent registered again");
      } else {
        const live = state.phase === "draining" ? "draining" : "live";
        await registry.heartbeat(state.agentId, options.inFlight(), live);
        apply({ type: "renewed", sentAt, at: now() });
      }
    } catch (err) {
      const e = MeshError.from(err, Code.Unavailable);
      if (!everRegistered && kind === "register" && refusedAtStart.has(e.code)) {
        state = onLeaseEvent(state, { type: "stop", at: now() });
        settleFirst.reject(e);
        return;
      }
      // The first failure of a streak is worth a warning; the rest would flood the log.
      if (state.failures === 0) log.warn({ err: e, call: kind }, "registry call failed; retrying");
      apply({ type: "failed", call: kind, code: e.code, message: e.message, at: now() });
    }
  };

  const schedule = () => {
    clearTimeout(timer);
    const next = nextLeaseCall(state, random());
    if (next === undefined) return;
    timer = setTimeout(
      () => {
        calling = call(next.call).finally(() => {
          calling = undefined;
          schedule();
        });
      },
      Math.max(0, next.at - now()),
    );
    timer.unref();
  };
  schedule();

  return {
    registered,
    get agentId() {
      return state.agentId;
    },
    get probation() {
      return probation;
    },
    status: () => leaseStatus(state, now()),
    async drain() {
      await calling;
      clearTimeout(timer);
      apply({ type: "drain", at: now() });
      if (state.leaseUntilMs > now()) await call("heartbeat");
      schedule();
    },
    stop() {
      clearTimeout(timer);
      apply({ type: "stop", at: now() });
    },
  };
}
