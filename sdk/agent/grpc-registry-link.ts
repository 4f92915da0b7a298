/**
 * The RegistryLink over the mesh's mTLS gRPC client: `RegisterAgent`,
 * `Heartbeat`, `DeregisterAgent` and `ReportConformance` of `agentmesh.v1.RegistryService`. The
 * channel proves this agent's identity (`agent-<name>`) with its certificate.
 *
 * @example
 * const certs = await watchCertificates({ dir: ".agentmesh/certs/agent-text" });
 * const channel = createChannel({ address: "127.0.0.1:7101", certs, server: spiffeId({ name: "registry" }) });
 * await runAgent(textAgent, { bus, registry: grpcRegistryLink(channel) });
 */
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { AgentState, RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { type Client, createClient, type MeshChannel } from "../../lib/rpc/index.js";
import type { RegistryLink } from "./registry-link.js";

export interface GrpcRegistryLinkOptions {
  /** Deadline of each call. Default 5 s. */
  timeoutMs?: number;
}

/**
 * @param target a channel to the registry, or an existing RegistryService
 *   client (e.g. one that dials lazily, as the embedded mode uses).
 */
export function grpcRegistryLink(
  target: MeshChannel | Client<typeof RegistryService>,
  options: GrpcRegistryLinkOptions = {},
): RegistryLink {
  const registry = "registerAgent" in target ? target : createClient(RegistryService, target);
  const call = { timeoutMs: options.timeoutMs ?? 5_000 };
  return {
    async register(card, { instanceId, leaseTtlMs }) {
      const res = await registry.registerAgent(
        {
          card,
          instanceId,
          ...(leaseTtlMs ? { leaseTtl: durationFromMs(leaseTtlMs) } : {}),
        },
        call,
      );
      if (!res.agent?.agentId) {
        throw new MeshError(Code.Internal, "registry returned no agent id");
      }
      return {
        agentId: res.agent.agentId,
        leaseTtlMs: res.leaseTtl ? durationMs(res.leaseTtl) : (leaseTtlMs ?? 30_000),
        probation: res.agent.state === AgentState.PROBATION,
      };
    },
    async heartbeat(agentId, inFlight, state) {
      await registry.heartbeat(
        {
          agentId,
          inFlight,
          state: state === "live" ? AgentState.LIVE : AgentState.DRAINING,
        },
        call,
      );
    },
    async deregister(agentId, reason) {
      await registry.deregisterAgent({ agentId, reason }, call);
    },
    async reportConformance(agentId, outcomes) {
      const res = await registry.reportConformance(
        {
          agentId,
          results: outcomes.map((o) => ({
            index: o.index,
            ...(o.error === undefined
              ? { output: fromJson(ValueSchema, (o.output ?? null) as JsonValue) }
              : { error: o.error.slice(0, 2000) }),
          })),
        },
        call,
      );
      return res.failures;
    },
  };
}
