/**
 * A private nats-server as production runs it: mutual TLS with the `nats`
 * identity of `certDir`'s dev CA, and the users and subject permissions that
 * `agentmesh nats config` writes from the grants in `policies/data.json`.
 *
 * @example
 * await ensureIdentities({ certDir, names: ["nats", "executor", "agent-util"] });
 * const nats = await startMeshNatsServer({ certDir, prefix, knownCapabilities: ["util.echo"] });
 */
import { readFile } from "node:fs/promises";
import { renderNatsConfig } from "../bus/nats-config.js";
import { busGrantsFromPolicyData } from "../bus/nats-permissions.js";
import { packagePath } from "../config/package-root.js";
import { certPaths } from "../tls/dev-ca.js";
import { type PrivateNatsServer, startNatsServer } from "./nats-server.js";

export interface MeshNatsServerOptions {
  /** A dev CA's folder holding the `nats` identity. */
  certDir: string;
  /** Bus prefix the permissions are written for. */
  prefix: string;
  /** Capabilities a wildcard grant expands to (consumer names are single tokens). */
  knownCapabilities: string[];
  /** SPIFFE IDs allowed everything (a benchmark's raw client). */
  unrestrictedUsers?: string[];
}

export async function startMeshNatsServer(
  options: MeshNatsServerOptions,
): Promise<PrivateNatsServer> {
  const grants = busGrantsFromPolicyData(
    JSON.parse(await readFile(packagePath("policies", "data.json"), "utf8")),
  );
  const server = certPaths(options.certDir, "nats");
  return startNatsServer({
    scheme: "tls",
    config: renderNatsConfig({
      grants,
      prefix: options.prefix,
      trustDomain: "agentmesh.local",
      namespace: "agentmesh",
      tls: { cert: server.cert, key: server.key, ca: server.ca },
      knownCapabilities: options.knownCapabilities,
      ...(options.unrestrictedUsers ? { unrestrictedUsers: options.unrestrictedUsers } : {}),
    }),
  });
}
