/**
 * Everything an agent process needs to join a mesh, from options or the
 * environment: its certificate (`$AGENTMESH_CERT_DIR/<identity>`, watched so a
 * rotation needs no restart), the job bus (`NATS_URL`; mutual TLS with that
 * certificate for `tls://`) and the mTLS link to the registry
 * (`AGENTMESH_REGISTRY_ADDR`). `runAgent` calls this when it is given no bus,
 * so an outside agent needs no internal import.
 *
 * @example
 * const link = await connectAgent({ name: "shout" });
 * await runAgent(agent, { bus: link.bus, registry: link.registry });
 * await link.close();
 */
import { access } from "node:fs/promises";
import { busOptionsFromEnv, connectBus } from "../../lib/bus/connect-bus.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { isTlsUrl } from "../../lib/bus/nats-tls.js";
import { loadConfig } from "../../lib/config/config.js";
import { settings } from "../../lib/config/settings.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { spiffeId } from "../../lib/identity/spiffe.js";
import { createLogger, type Logger } from "../../lib/log/logger.js";
import { createChannel, type MeshChannel } from "../../lib/rpc/index.js";
import { type CertWatcher, certPaths, watchCertificates } from "../../lib/tls/index.js";
import { grpcRegistryLink } from "./grpc-registry-link.js";
import { noopRegistryLink, type RegistryLink } from "./registry-link.js";

export interface AgentConnectionOptions {
  /**
   * The identity the agent proves (its certificate's SPIFFE name, the key of its
   * grant in `policies/data.json`). Default `AGENTMESH_AGENT_IDENTITY`, else `agent-<name>`.
   */
  identity?: string;
  /** Directory with one sub-directory per identity (`tls.crt`, `tls.key`, `ca.crt`). Default `AGENTMESH_CERT_DIR`. */
  certDir?: string;
  /** The registry's `host:port` (or replicas `a:p,b:p`). Default `AGENTMESH_REGISTRY_ADDR`, else `127.0.0.1:7101`. */
  registryAddress?: string;
  /** `false` runs unregistered (jobs still flow; the planner cannot see the agent). Default true. */
  register?: boolean;
  /** NATS server. Default `NATS_URL`, else `nats://127.0.0.1:4222`. */
  natsUrl?: string;
  /** Where unset options are read from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

export interface AgentConnection {
  readonly identity: string;
  readonly bus: JobBus;
  readonly registry: RegistryLink;
  /** Closes the registry channel, the bus and the certificate watcher. */
  close(): Promise<void>;
}

/** Connects an agent named `name` (its definition's name) to the mesh. */
export async function connectAgent(
  name: string,
  options: AgentConnectionOptions = {},
): Promise<AgentConnection> {
  const env = options.env ?? process.env;
  const config = loadConfig(env);
  const log = options.log ?? createLogger({ name: `agent-${name}` });
  const identity = options.identity ?? settings.agentIdentity.read(env) ?? `agent-${name}`;
  const register = options.register ?? true;
  const natsUrl = options.natsUrl ?? config.natsUrl;
  const certDir = options.certDir ?? config.certDir;
  const certs =
    register || isTlsUrl(natsUrl) ? await agentCertificates(certDir, identity) : undefined;
  let channel: MeshChannel | undefined;
  try {
    const bus = await connectBus({
      ...busOptionsFromEnv(env),
      natsUrl,
      explicit: options.natsUrl !== undefined || config.natsExplicit,
      name: identity,
      // Mutual TLS on a tls:// NATS with the same certificate as gRPC; results bound to this identity.
      identity: { name: identity, ...(certs ? { certs } : {}) },
      log,
    });
    if (certs && register) {
      channel = createChannel({
        address:
          options.registryAddress ??
          settings.registryAddr.read(env) ??
          `127.0.0.1:${config.ports.registry}`,
        certs,
        server: spiffeId({
          name: "registry",
          trustDomain: config.trustDomain,
          namespace: config.namespace,
        }),
      });
    }
    const link = channel;
    return {
      identity,
      bus,
      registry: link ? grpcRegistryLink(link) : noopRegistryLink(),
      async close() {
        link?.close();
        await bus.close({ graceMs: 0 });
        certs?.close();
      },
    };
  } catch (err) {
    channel?.close();
    certs?.close();
    throw err;
  }
}

/** The identity's certificate files, watched; a clear error naming the command that makes them. */
async function agentCertificates(certDir: string, identity: string): Promise<CertWatcher> {
  const paths = certPaths(certDir, identity);
  try {
    await access(paths.cert);
  } catch {
    throw new MeshError(
      Code.FailedPrecondition,
      `no certificate for identity ${identity} at ${paths.dir}: issue one with \`agentmesh certs issue ${identity}\` (or mount it there; AGENTMESH_CERT_DIR sets the directory)`,
    );
  }
  return watchCertificates({ dir: paths.dir });
}
