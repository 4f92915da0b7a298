/**
 * Picks the job bus for a process: NATS JetStream when the server answers,
 * else — only when NATS was not asked for explicitly — the in-process bus.
 * The choice is logged, because a mesh that silently lost its broker would
 * look healthy while agents in other processes starve.
 *
 * @example
 * const config = loadConfig();
 * const bus = await connectBus({ natsUrl: config.natsUrl, explicit: config.natsExplicit });
 */
import { settings } from "../config/settings.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import { createInProcessBus } from "./in-process-bus.js";
import { createJetStreamBus, type JetStreamBusOptions } from "./jetstream-bus.js";
import type { BusOptions, JobBus } from "./job-bus.js";

export interface ConnectBusOptions extends BusOptions {
  /** NATS URL(s). Default `nats://127.0.0.1:4222`. */
  natsUrl?: string | string[];
  /** NATS was configured on purpose (e.g. `NATS_URL` set): fail rather than fall back. Default false. */
  explicit?: boolean;
  /** Client name shown by the NATS server. */
  name?: string;
  /** Extra JetStream settings (dead-letter mover, publish timeout). */
  jetstream?: Omit<JetStreamBusOptions, keyof BusOptions | "servers" | "log">;
  log?: Logger;
}

export async function connectBus(options: ConnectBusOptions = {}): Promise<JobBus> {
  const log = options.log ?? createLogger({ name: "bus" });
  const { natsUrl = "nats://127.0.0.1:4222", explicit = false, jetstream, ...rest } = options;
  try {
    const bus = await createJetStreamBus({
      ...rest,
      ...jetstream,
      servers: natsUrl,
      log,
    });
    log.info({ natsUrl, prefix: bus.options.prefix }, "job bus: NATS JetStream");
    return bus;
  } catch (err) {
    if (explicit) {
      throw new MeshError(Code.Unavailable, `job bus: NATS at ${String(natsUrl)} did not answer`, {
        cause: err,
      });
    }
    log.warn(
      { natsUrl, err: String(err) },
      "job bus: NATS did not answer; using the in-process bus (jobs stay in this process)",
    );
    return createInProcessBus({ ...rest, log });
  }
}

/**
 * Bus settings from the environment (`AGENTMESH_BUS_*`, see
 * docs/configuration.md), for processes started from the CLI.
 */
export function busOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): BusOptions {
  const out: BusOptions = {};
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
