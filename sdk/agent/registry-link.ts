/**
 * How a running agent talks to the registry: register its card, renew its
 * lease by heartbeat, deregister when it stops. `runAgent` depends only on
 * this interface; the gRPC implementation over mTLS lives with the RPC client,
 * and `noopRegistryLink` serves standalone runs with no registry.
 *
 * @example
 * const link: RegistryLink = noopRegistryLink();
 * const { agentId, leaseTtlMs } = await link.register(card, { instanceId });
 */
import { randomBytes } from "node:crypto";
import type { AgentCard } from "../../gen/agentmesh/v1/registry_pb.js";

/** Liveness an agent reports, as the registry's `AgentState` names it. */
export type AgentLiveness = "live" | "draining";

export interface Registration {
  /** Registry-assigned id, stable for one instance across re-registrations. */
  agentId: string;
  /** Lease length; the agent heartbeats well within it. */
  leaseTtlMs: number;
  /**
   * True when the registry holds the agent in probation until it reports its card's
   * conformance examples passing (`reportConformance`); it must take no jobs until then.
   */
  probation?: boolean;
}

/** What a handler produced for one conformance example of the card (by index). */
export interface ConformanceOutcome {
  index: number;
  output?: unknown;
  error?: string;
}

export interface RegisterOptions {
  /** Identifies this process, so a restart re-registers as the same instance. */
  instanceId: string;
  /** Lease length the agent asks for. */
  leaseTtlMs?: number;
}

export interface RegistryLink {
  register(card: AgentCard, options: RegisterOptions): Promise<Registration>;
  heartbeat(agentId: string, inFlight: number, state: AgentLiveness): Promise<void>;
  deregister(agentId: string, reason: string): Promise<void>;
  /** Reports conformance outcomes; resolves to the registry's failures (empty: the agent is LIVE). */
  reportConformance?(agentId: string, outcomes: ConformanceOutcome[]): Promise<string[]>;
}

/** A link for agents run without a registry: ids are local, calls do nothing. */
export function noopRegistryLink(): RegistryLink {
  return {
    async register(card, options) {
      return {
        agentId: `agent-${card.name}-${options.instanceId || randomBytes(4).toString("hex")}`,
        leaseTtlMs: options.leaseTtlMs ?? 30_000,
      };
    },
    async heartbeat() {},
    async deregister() {},
  };
}
