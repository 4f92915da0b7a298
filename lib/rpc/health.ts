/**
 * The standard `grpc.health.v1.Health` service (Check, Watch, List) with a
 * settable status per service. Every `MeshServer` serves one; its owner sets
 * the whole server's status (service `""`) from readiness: store, bus and
 * policy loaded → SERVING, otherwise NOT_SERVING.
 *
 * @example
 * server.health.set("", "NOT_SERVING");   // while the store connects
 * server.health.set("", "SERVING");
 * // grpcurl ... host:port grpc.health.v1.Health/Check
 */
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { ServiceImpl } from "./handler.js";

/** A service's status as the health protocol names it. */
export type HealthState = "SERVING" | "NOT_SERVING";

export interface HealthStatus {
  /** Sets the status of `service` (a full service name, or `""` for the whole server). */
  set(service: string, state: HealthState): void;
  /** The status of `service`, or undefined when it is unknown. */
  get(service: string): HealthState | undefined;
}

/** @internal The health service of one server. */
export interface HealthService extends HealthStatus {
  readonly service: typeof Health;
  readonly impl: ServiceImpl<typeof Health>;
  /** Marks everything NOT_SERVING and ends Watch streams (server shutdown). */
  shutdown(): void;
}

export function createHealth(): HealthService {
  const states = new Map<string, HealthState>([["", "SERVING"]]);
  const watchers = new Set<() => void>();
  let closed = false;
  const notify = () => {
    for (const w of watchers) w();
  };
  const status = (service: string): ServingStatus => {
    const state = states.get(service);
    if (state === undefined) return ServingStatus.SERVICE_UNKNOWN;
    return state === "SERVING" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  return {
    service: Health,
    set(service, state) {
      if (states.get(service) === state) return;
      states.set(service, state);
      notify();
    },
    get: (service) => states.get(service),
    shutdown() {
      for (const key of states.keys()) states.set(key, "NOT_SERVING");
      closed = true;
      notify();
    },
    impl: {
      check(req) {
        if (!states.has(req.service)) {
          throw new MeshError(Code.NotFound, `unknown service ${JSON.stringify(req.service)}`);
        }
        return { status: status(req.service) };
      },
      list() {
        const statuses: Record<string, { status: ServingStatus }> = {};
        for (const key of states.keys()) statuses[key] = { status: status(key) };
        return { statuses };
      },
      async *watch(req, ctx) {
        // Per the protocol: send the current status, then every change; an
        // unknown service is SERVICE_UNKNOWN (not an error) and may appear later.
        let wake: (() => void) | undefined;
        let changed = true;
        const watcher = () => {
          changed = true;
          wake?.();
        };
        const onAbort = () => wake?.();
        watchers.add(watcher);
        ctx.signal.addEventListener("abort", onAbort);
        try {
          let last: ServingStatus | undefined;
          while (!ctx.signal.aborted) {
            if (changed) {
              changed = false;
              const now = status(req.service);
              if (now !== last) {
                last = now;
                yield { status: now };
              }
              if (closed) return;
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        } finally {
          watchers.delete(watcher);
          ctx.signal.removeEventListener("abort", onAbort);
        }
      },
    },
  };
}
