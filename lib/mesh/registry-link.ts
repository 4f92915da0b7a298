/**
 * The agent SDK's `RegistryLink` over mTLS gRPC: register the card, renew the
 * lease by heartbeat, deregister on stop. The agent's certificate
 * (`agent-<name>`) is its identity; the policy decides which capabilities it
 * may register.
 *
 * @example
 * const link = grpcRegistryLink(createClient(RegistryService, channel));
 * await runAgent(utilAgent, { bus, registry: link });
 */
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import type { AgentCard } from "../../gen/agentmesh/v1/registry_pb.js";
import { AgentState, type RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import type { Client } from "../rpc/client.js";

/**
 * The SDK's `RegistryLink` shape, restated so `lib/` does not depend on
 * `sdk/` (the SDK's interface is structurally the same).
 */
export interface GrpcRegistryLink {
  register(
    card: AgentCard,
    options: { instanceId: string; leaseTtlMs?: number },
  ): Promise<{ agentId: string; leaseTtlMs: number }>;
  heartbeat(agentId: string, inFlight: number, state: "live" | "draining"): Promise<void>;
  deregister(agentId: string, reason: string): Promise<void>;
}

export function grpcRegistryLink(registry: Client<typeof RegistryService>): GrpcRegistryLink {
  return {
    async register(card, options) {
      const res = await registry.registerAgent({
        card,
        instanceId: options.instanceId,
        ...(options.leaseTtlMs ? { leaseTtl: durationFromMs(options.leaseTtlMs) } : {}),
      });
      return {
        agentId: res.agent?.agentId ?? "",
        leaseTtlMs: res.leaseTtl ? durationMs(res.leaseTtl) : 15_000,
      };
    },
    async heartbeat(agentId, inFlight, state) {
      await registry.heartbeat({
        agentId,
        inFlight,
        state: state === "draining" ? AgentState.DRAINING : AgentState.LIVE,
      });
    },
    async deregister(agentId, reason) {
      await registry.deregisterAgent({ agentId, reason });
    },
  };
}
