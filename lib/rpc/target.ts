/**
 * Where a channel dials: one service may run as several replicas. An address
 * is one of
 *
 * | form | meaning |
 * | --- | --- |
 * | `host:port` | one name; every address DNS gives for it is used |
 * | `dns:///host:port` | the same, spelled as a gRPC target (e.g. a Kubernetes headless service) |
 * | `10.0.0.5:7103,10.0.0.6:7103` | a fixed list of IP addresses (IPv6 as `[::1]:7103`) |
 * | `ipv4:…`, `ipv6:…`, `unix:…` | any other gRPC target, passed through |
 *
 * Calls are spread round robin over the addresses that answer, and a replica
 * that stops answering is left out until it does again (grpc-js's
 * `round_robin` policy), so killing one replica does not fail the calls that
 * follow.
 *
 * @example
 * grpcTarget("10.0.0.5:7103,10.0.0.6:7103"); // "ipv4:10.0.0.5:7103,10.0.0.6:7103"
 */
import { isIPv4, isIPv6 } from "node:net";
import { Code, MeshError } from "../errors/mesh-error.js";

/** The service config every channel uses: round robin over every resolved address. */
export const roundRobinServiceConfig = JSON.stringify({
  loadBalancingConfig: [{ round_robin: {} }],
});

/** The grpc-js target for an address as configured (see the module comment). */
export function grpcTarget(address: string): string {
  const a = address.trim();
  if (/^(dns|ipv4|ipv6|unix|unix-abstract):/.test(a)) return a;
  if (!a.includes(",")) return a;
  const parts = a.split(",").map((p) => p.trim());
  if (parts.every((p) => isIPv4(hostOf(p)))) return `ipv4:${parts.join(",")}`;
  if (parts.every((p) => isIPv6(hostOf(p).replace(/^\[|\]$/g, "")))) {
    return `ipv6:${parts.join(",")}`;
  }
  throw new MeshError(
    Code.InvalidArgument,
    `invalid address list ${JSON.stringify(address)}: list IP addresses (host:port,host:port), or give one DNS name (dns:///name:port) whose records name the replicas`,
  );
}

/** `host` of `host:port` (`[v6]` kept bracketed). */
function hostOf(hostPort: string): string {
  const i = hostPort.lastIndexOf(":");
  return i <= 0 ? "" : hostPort.slice(0, i);
}
