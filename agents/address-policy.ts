/**
 * Which network addresses the HTTP agent may connect to. Every address a
 * host name resolves to is checked — not the name — against the ranges no
 * outside request should reach: loopback, private, shared (CGNAT),
 * link-local (cloud metadata at 169.254.169.254 and fd00:ec2::254),
 * multicast, reserved and documentation ranges, and the IPv6 forms that
 * embed an IPv4 address (mapped, NAT64). An operator opens a range with an
 * explicit CIDR allowlist (`AGENTMESH_HTTP_ALLOW_CIDRS`).
 *
 * @example
 * const policy = addressPolicy(["10.1.0.0/16"]);
 * policy.denied("169.254.169.254"); // "link-local (cloud metadata) address 169.254.169.254"
 * policy.denied("10.1.2.3"); // undefined: allowlisted
 */
import { BlockList, isIP } from "node:net";

const deniedRanges: [string, number, "ipv4" | "ipv6", string][] = [
  ["0.0.0.0", 8, "ipv4", "unspecified"],
  ["10.0.0.0", 8, "ipv4", "private"],
  ["100.64.0.0", 10, "ipv4", "shared (CGNAT)"],
  ["127.0.0.0", 8, "ipv4", "loopback"],
  ["169.254.0.0", 16, "ipv4", "link-local (cloud metadata)"],
  ["172.16.0.0", 12, "ipv4", "private"],
  ["192.0.0.0", 24, "ipv4", "IETF protocol assignments"],
  ["192.0.2.0", 24, "ipv4", "documentation"],
  ["192.88.99.0", 24, "ipv4", "6to4 relay"],
  ["192.168.0.0", 16, "ipv4", "private"],
  ["198.18.0.0", 15, "ipv4", "benchmarking"],
  ["198.51.100.0", 24, "ipv4", "documentation"],
  ["203.0.113.0", 24, "ipv4", "documentation"],
  ["224.0.0.0", 4, "ipv4", "multicast"],
  ["240.0.0.0", 4, "ipv4", "reserved or broadcast"],
  ["::", 128, "ipv6", "unspecified"],
  ["::1", 128, "ipv6", "loopback"],
  ["::ffff:0:0", 96, "ipv6", "IPv4-mapped"],
  ["64:ff9b::", 96, "ipv6", "NAT64"],
  ["64:ff9b:1::", 48, "ipv6", "NAT64"],
  ["100::", 64, "ipv6", "discard"],
  ["2001:db8::", 32, "ipv6", "documentation"],
  ["2002::", 16, "ipv6", "6to4"],
  ["fc00::", 7, "ipv6", "unique local (cloud metadata)"],
  ["fe80::", 10, "ipv6", "link-local"],
  ["fec0::", 10, "ipv6", "site-local"],
  ["ff00::", 8, "ipv6", "multicast"],
];

export interface AddressPolicy {
  /** Why `address` (an IP literal) may not be reached, or undefined when it may. */
  denied(address: string): string | undefined;
}

/** Parses `a.b.c.d/n` or `x::y/n`; throws on anything else. */
function parseCidr(cidr: string): { network: string; prefix: number; type: "ipv4" | "ipv6" } {
  const [network = "", bits] = cidr.trim().split("/");
  const version = isIP(network);
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (version === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new Error(`invalid CIDR ${JSON.stringify(cidr)}`);
  }
  return { network, prefix, type: version === 4 ? "ipv4" : "ipv6" };
}

export function addressPolicy(allowCidrs: readonly string[] = []): AddressPolicy {
  const allowed = new BlockList();
  for (const cidr of allowCidrs) {
    const { network, prefix, type } = parseCidr(cidr);
    allowed.addSubnet(network, prefix, type);
  }
  const ranges = deniedRanges.map(([network, prefix, type, what]) => {
    const list = new BlockList();
    list.addSubnet(network, prefix, type);
    return { list, type, what };
  });
  return {
    denied(address) {
      const version = isIP(address);
      if (version === 0) return `${JSON.stringify(address)} is not an IP address`;
      const type = version === 4 ? "ipv4" : "ipv6";
      if (allowed.check(address, type)) return undefined;
      // BlockList matches IPv4-mapped IPv6 addresses against IPv4 ranges, and IPv4 addresses
      // against ::ffff:0:0/96: an IPv4 address is checked against the IPv4 ranges only.
      const hit = ranges.find(
        (r) => (type === "ipv6" || r.type === "ipv4") && r.list.check(address, type),
      );
      return hit ? `${hit.what} address ${address}` : undefined;
    },
  };
}

export function allowCidrsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.AGENTMESH_HTTP_ALLOW_CIDRS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}
