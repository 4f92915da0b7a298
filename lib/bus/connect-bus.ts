/**
 * Picks the job bus for a process: NATS JetStream when the server answers,
 * else — only when NATS was not asked for explicitly — the in-process bus.
 * The choice is logged, because a mesh that silently lost its broker would
 * look healthy while agents in other processes starve.
 *
 * Transport: a `tls://` URL means mutual TLS with the process's workload
 * certificate (`identity`), and the server's permissions then bind what this
 * identity may consume and publish. Plaintext is refused except to a loopback
 * server (the local dev NATS, with a warning) or with `allowPlaintext`
 * (`AGENTMESH_NATS_PLAINTEXT=true`).
 *
 * @example
 * const config = loadConfig();
 * const bus = await connectBus({ natsUrl: config.natsUrl, explicit: config.natsExplicit });
 * const agentBus = await connectBus({ natsUrl: "tls://nats:4222", explicit: true,
 *   identity: { name: "agent-text", certs: await watchCertificates({ dir: "certs/agent-text" }) } });
 */
import { settings } from "../config/settings.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import type { CertWatcher } from "../tls/cert-watcher.js";
import { createInProcessBus } from "./in-process-bus.js";
import { createJetStreamBus, type JetStreamBusOptions } from "./jetstream-bus.js";
import type { BusOptions, JobBus } from "./job-bus.js";
import { busDutiesOf } from "./nats-permissions.js";
import { checkNatsTransport, natsServerIdentity, natsTlsOptions } from "./nats-tls.js";

export interface BusIdentity {
  /** SPIFFE service-account name (`executor`, `agent-text`). */
  name: string;
  /** Its certificate files; required for a `tls://` NATS. */
  certs?: CertWatcher;
  /** The NATS server's expected SPIFFE ID. Default: `nats` in the certificate's trust domain and namespace. */
  serverId?: string;
}

export interface ConnectBusOptions extends BusOptions {
  /** NATS URL(s). Default `nats://127.0.0.1:4222`. */
  natsUrl?: string | string[];
  /** NATS was configured on purpose (e.g. `NATS_URL` set): fail rather than fall back. Default false. */
  explicit?: boolean;
  /** Client name shown by the NATS server. */
  name?: string;
  /** Who this process is on the bus; see the module comment. */
  identity?: BusIdentity;
  /** Accept plaintext NATS beyond loopback (development only). Default false. */
  allowPlaintext?: boolean;
  /** Extra JetStream settings (dead-letter mover, publish timeout). */
  jetstream?: Omit<JetStreamBusOptions, keyof BusOptions | "servers" | "log">;
  log?: Logger;
}

export async function connectBus(options: ConnectBusOptions = {}): Promise<JobBus> {
  const log = options.log ?? createLogger({ name: "bus" });
  const {
    natsUrl = "nats://127.0.0.1:4222",
    explicit = false,
    jetstream,
    identity,
    allowPlaintext = false,
    ...rest
  } = options;
  // A refused transport is a configuration error, never a reason to fall back.
  const transport = checkNatsTransport(natsUrl, { allowPlaintext });
  const tls = transport === "tls" ? clientTls(identity) : undefined;
  try {
    const bus = await createJetStreamBus({
      ...rest,
      // What an identity's permissions let it do on a mutual-TLS NATS (agents provision nothing).
      ...(tls && identity ? busDutiesOf(identity.name) : {}),
      ...jetstream,
      ...(identity ? { identity: identity.name } : {}),
      ...(tls ? { tls: tls.options } : {}),
      servers: natsUrl,
      log,
    });
    if (tls) {
      log.info(
        { natsUrl, prefix: bus.options.prefix, identity: identity?.name },
        "job bus: NATS JetStream over mutual TLS",
      );
    } else {
      log.warn(
        { natsUrl, prefix: bus.options.prefix },
        "job bus: NATS JetStream in PLAINTEXT: any local process can read jobs and forge results (development only)",
      );
    }
    return bus;
  } catch (err) {
    tls?.close();
    if (explicit || tls) {
      // The cause says which step failed (connect, TLS, provisioning a stream): an operator needs it.
      const why = err instanceof Error ? err.message : String(err);
      throw new MeshError(
        Code.Unavailable,
        `job bus: NATS at ${String(natsUrl)} did not answer: ${why}`,
        { cause: err },
      );
    }
    log.warn(
      { natsUrl, err: String(err) },
      "job bus: NATS did not answer; using the in-process bus (jobs stay in this process)",
    );
    return createInProcessBus({ ...rest, log });
  }
}

function clientTls(identity: BusIdentity | undefined) {
  const certs = identity?.certs;
  const own = certs?.current.spiffeId;
  if (!identity || !certs || !own) {
    throw new MeshError(
      Code.FailedPrecondition,
      "a tls:// NATS needs this process's workload certificate (one SPIFFE identity per bus connection)",
    );
  }
  const serverId =
    identity.serverId ??
    settings.natsServerId.read(process.env) ??
    own.replace(/\/sa\/[^/]+$/, `/sa/${natsServerIdentity}`);
  return natsTlsOptions(certs, serverId);
}

/**
 * Bus settings from the environment (`AGENTMESH_BUS_*`, `AGENTMESH_NATS_PLAINTEXT`,
 * see docs/configuration.md), for processes started from the CLI.
 */
export function busOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): BusOptions & Pick<ConnectBusOptions, "allowPlaintext"> {
  const out: BusOptions & Pick<ConnectBusOptions, "allowPlaintext"> = {};
  if (settings.natsPlaintext.read(env)) out.allowPlaintext = true;
  const prefix = settings.busPrefix.read(env);
  if (prefix) out.prefix = prefix;
  const ackWait = settings.busAckWaitMs.read(env);
  if (ackWait !== undefined) out.ackWaitMs = ackWait;
  const maxDeliver = settings.busMaxDeliver.read(env);
  if (maxDeliver !== undefined) out.maxDeliver = maxDeliver;
  const maxAckPending = settings.busMaxAckPending.read(env);
  if (maxAckPending !== undefined) out.maxAckPending = maxAckPending;
  return out;
}
