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
 * Bus settings from the environment, for processes started from the CLI.
 *
 * | variable | meaning |
 * | --- | --- |
 * | `AGENTMESH_BUS_PREFIX` | subject/stream prefix (default `agentmesh`) |
 * | `AGENTMESH_BUS_ACK_WAIT_MS` | ack wait (default 30000) |
 * | `AGENTMESH_BUS_MAX_DELIVER` | deliveries before dead letter (default 5) |
 * | `AGENTMESH_BUS_MAX_ACK_PENDING` | per-consumer in-flight limit (default 1000) |
 */
export function busOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): BusOptions {
  const out: BusOptions = {};
  if (env.AGENTMESH_BUS_PREFIX) out.prefix = env.AGENTMESH_BUS_PREFIX;
  const ackWait = positiveInt(env, "AGENTMESH_BUS_ACK_WAIT_MS");
  if (ackWait !== undefined) out.ackWaitMs = ackWait;
  const maxDeliver = positiveInt(env, "AGENTMESH_BUS_MAX_DELIVER");
  if (maxDeliver !== undefined) out.maxDeliver = maxDeliver;
  const maxAckPending = positiveInt(env, "AGENTMESH_BUS_MAX_ACK_PENDING");
  if (maxAckPending !== undefined) out.maxAckPending = maxAckPending;
  return out;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    throw new MeshError(
      Code.InvalidArgument,
      `${name}=${JSON.stringify(v)}: expected a positive integer`,
    );
  }
  return n;
}
