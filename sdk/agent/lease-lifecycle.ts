/**
 * An agent's registration lease as a pure decider: `(state, event) → state`,
 * and `nextLeaseCall(state)` says which registry call to make and when. The
 * lease keeper (`lease-keeper.ts`) makes the calls and feeds their outcomes back.
 *
 * Rules:
 * - Until the registry answers a registration, register again with backoff
 *   (equal jitter, capped at half a heartbeat interval), same card, same instance id.
 * - While live, heartbeat every `leaseTtl / 3`. A failed heartbeat is retried with
 *   the same capped backoff; once the lease this agent knows of has lapsed (the
 *   registry has expired it or will), the next call registers instead.
 * - The registry answering a heartbeat with FAILED_PRECONDITION (expired or
 *   deregistered) or NOT_FOUND (forgotten) means: register again, now.
 * So after any outage of the registry or its database the agent is live again
 * within one heartbeat interval of recovery, without a restart.
 *
 * @example
 * let s = initialLease({ leaseTtlMs: 15_000, at: Date.now() });
 * nextLeaseCall(s, 0.5); // { call: "register", at: <now> }
 * s = onLeaseEvent(s, { type: "registered", agentId, leaseTtlMs: 15_000, sentAt, at: Date.now() });
 * leaseStatus(s, Date.now()).ready; // true
 */
import { Code } from "../../lib/errors/mesh-error.js";

export type LeasePhase = "registering" | "live" | "draining" | "stopped";

/** What the agent knows of its registration; plain JSON. */
export interface LeaseState {
  phase: LeasePhase;
  /** The id the registry gave; empty until the first registration. */
  agentId: string;
  /** Lease length granted (or, before that, asked for). */
  leaseTtlMs: number;
  /** Until when the registry holds the lease, as far as this agent knows (0: none). */
  leaseUntilMs: number;
  /** When the last call succeeded (0: never). */
  lastOkAtMs: number;
  /** When the last call ended, successful or not. */
  lastCallAtMs: number;
  /** Calls failed in a row since the last success. */
  failures: number;
  /** The last failure, for status and logs. */
  lastError?: string;
}

export type LeaseEvent =
  /** The registry accepted a registration sent at `sentAt`. */
  | { type: "registered"; agentId: string; leaseTtlMs: number; sentAt: number; at: number }
  /** The registry renewed the lease on a heartbeat sent at `sentAt`. */
  | { type: "renewed"; sentAt: number; at: number }
  /** A call failed with this code. */
  | { type: "failed"; call: LeaseCallKind; code: Code; message: string; at: number }
  /** The agent drains: it heartbeats DRAINING and never registers again. */
  | { type: "drain"; at: number }
  | { type: "stop"; at: number };

export type LeaseCallKind = "register" | "heartbeat";

/** The next registry call and when to make it (epoch ms). */
export interface LeaseCall {
  call: LeaseCallKind;
  at: number;
}

/** What `RunningAgent.status()` reports, e.g. for an agent process's `/readyz`. */
export interface AgentStatus {
  phase: LeasePhase;
  /** Live and holding its lease: the registry offers this agent's capabilities. */
  ready: boolean;
  /** The registry's id for this agent; empty until first registered. */
  agentId: string;
  /** Until when the lease is held as far as the agent knows (0: none). */
  leaseExpiresAtMs: number;
  /** Registry calls failed in a row. */
  failures: number;
  lastError?: string;
}

/** First retry after a failed call; doubles per failure up to half a heartbeat interval. */
export const leaseInitialBackoffMs = 250;

/** Heartbeat period for a lease: a third of it, at least 1 s. */
export function heartbeatIntervalMs(leaseTtlMs: number): number {
  return Math.max(1_000, Math.floor(leaseTtlMs / 3));
}

export function initialLease(options: { leaseTtlMs: number; at: number }): LeaseState {
  return {
    phase: "registering",
    agentId: "",
    leaseTtlMs: options.leaseTtlMs,
    leaseUntilMs: 0,
    lastOkAtMs: 0,
    lastCallAtMs: options.at,
    failures: 0,
  };
}

/** Heartbeat answers that mean the registry no longer holds this agent's lease. */
const lostLease = new Set<Code>([Code.FailedPrecondition, Code.NotFound]);

export function onLeaseEvent(state: LeaseState, event: LeaseEvent): LeaseState {
  if (state.phase === "stopped") return state;
  switch (event.type) {
    case "registered": {
      const { lastError: _, ...rest } = state;
      return {
        ...rest,
        phase: state.phase === "draining" ? "draining" : "live",
        agentId: event.agentId,
        leaseTtlMs: event.leaseTtlMs,
        leaseUntilMs: event.sentAt + event.leaseTtlMs,
        lastOkAtMs: event.at,
        lastCallAtMs: event.at,
        failures: 0,
      };
    }
    case "renewed": {
      const { lastError: _, ...rest } = state;
      return {
        ...rest,
        leaseUntilMs: Math.max(state.leaseUntilMs, event.sentAt + state.leaseTtlMs),
        lastOkAtMs: event.at,
        lastCallAtMs: event.at,
        failures: 0,
      };
    }
    case "failed": {
      const lastError = `${event.call}: ${event.message}`;
      if (event.call === "heartbeat" && lostLease.has(event.code)) {
        // Registering at once (failures 0) while live; a draining agent just stops renewing.
        return {
          ...state,
          phase: state.phase === "live" ? "registering" : state.phase,
          leaseUntilMs: 0,
          lastCallAtMs: event.at,
          failures: 0,
          lastError,
        };
      }
      return { ...state, lastCallAtMs: event.at, failures: state.failures + 1, lastError };
    }
    case "drain":
      return { ...state, phase: "draining" };
    case "stop":
      return { ...state, phase: "stopped" };
  }
}

/**
 * The next call to make, or none (stopped; draining without a lease).
 * @param jitter a number in [0, 1) spreading retries of many agents apart.
 */
export function nextLeaseCall(state: LeaseState, jitter: number): LeaseCall | undefined {
  const interval = heartbeatIntervalMs(state.leaseTtlMs);
  // Failed calls are retried at least twice per interval, so that the call after a
  // recovery lands within one interval even when the channel needs to redial first.
  const retryAt = state.lastCallAtMs + retryDelayMs(state.failures, interval / 2, jitter);
  switch (state.phase) {
    case "stopped":
      return undefined;
    case "registering":
      return { call: "register", at: retryAt };
    case "live":
    case "draining": {
      if (state.leaseUntilMs === 0) {
        return state.phase === "live" ? { call: "register", at: retryAt } : undefined;
      }
      const at = state.failures === 0 ? state.lastOkAtMs + interval : retryAt;
      if (at < state.leaseUntilMs) return { call: "heartbeat", at };
      // The lease lapsed meanwhile: the registry expired it (or will), so register.
      return state.phase === "live" ? { call: "register", at } : undefined;
    }
  }
}

/** Delay before retrying after `failures` failed calls: exponential, equal jitter, capped. */
export function retryDelayMs(failures: number, capMs: number, jitter: number): number {
  if (failures <= 0) return 0;
  const raw = Math.min(capMs, leaseInitialBackoffMs * 2 ** (failures - 1));
  return Math.round(raw / 2 + (raw / 2) * Math.min(Math.max(jitter, 0), 1));
}

export function leaseStatus(state: LeaseState, now: number): AgentStatus {
  return {
    phase: state.phase,
    ready: state.phase === "live" && now < state.leaseUntilMs,
    agentId: state.agentId,
    leaseExpiresAtMs: state.leaseUntilMs,
    failures: state.failures,
    ...(state.lastError !== undefined ? { lastError: state.lastError } : {}),
  };
}
