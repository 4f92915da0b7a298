/**
 * Starts one mesh component: its mTLS gRPC server (policy on every call,
 * health, reflection), its service implementation wired to the shared store,
 * bus and clients of the other components, and readiness that follows the
 * store's health and the policy's. Without a `runtime` it opens its own (and
 * closes it on `stop()`), which is what `agentmesh serve <name>` does.
 *
 * @example
 * const running = await startComponent(executorComponent, { runtime, port: 0 });
 * console.log(running.address, running.spiffeId);
 * await running.stop();
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { DescService } from "@bufbuild/protobuf";
import type { JobBus } from "../bus/job-bus.js";
import type { MeshConfig } from "../config/config.js";
import type { Logger } from "../log/logger.js";
import type { ServiceImpl } from "../rpc/handler.js";
import { createServer, type MeshServer } from "../rpc/server.js";
import type { Store } from "../store/store.js";
import type { MeshMetrics } from "../telemetry/metrics.js";
import {
  type ComponentName,
  type MeshClients,
  type MeshRuntime,
  type MeshRuntimeOptions,
  openMeshRuntime,
} from "./mesh-runtime.js";

/** What a component's factory gets. */
export interface ComponentDeps {
  readonly name: ComponentName;
  /** Unique per process and component: lease owner, consumer and log label. */
  readonly instanceId: string;
  /** This component's SPIFFE ID. */
  readonly spiffeId: string;
  readonly config: MeshConfig;
  readonly store: Store;
  readonly bus: JobBus;
  readonly clients: MeshClients;
  readonly metrics: MeshMetrics;
  readonly log: Logger;
  /** The runtime, for what the fields above do not cover. */
  readonly runtime: MeshRuntime;
}

/** A service implementation with its background work. */
export interface ServiceHandle<S extends DescService> {
  impl: ServiceImpl<S>;
  /** Background work (consumers, tickers); the server reports SERVING once it resolves. */
  start?(): Promise<void> | void;
  /** Stops background work; called after the server stopped taking calls. */
  stop?(): Promise<void> | void;
}

/** How to build one component. */
export interface ComponentDefinition<S extends DescService = DescService> {
  name: ComponentName;
  service: S;
  create(deps: ComponentDeps): ServiceHandle<S> | Promise<ServiceHandle<S>>;
}

export interface StartComponentOptions {
  /** Shared resources; default a runtime opened (and closed) for this component alone. */
  runtime?: MeshRuntime;
  /** Options of the runtime opened when `runtime` is absent. */
  runtimeOptions?: MeshRuntimeOptions;
  /** Port; default the config port of the component (0 picks a free one). */
  port?: number;
  /** Bind address; default `config.host`. */
  host?: string;
  /** Default `<name>-<host>-<pid>-<random>`. */
  instanceId?: string;
  /** Grace for in-flight calls on stop. Default 5 s. */
  graceMs?: number;
}

export interface RunningComponent {
  readonly name: ComponentName;
  readonly address: string;
  readonly spiffeId: string;
  readonly instanceId: string;
  readonly server: MeshServer;
  readonly runtime: MeshRuntime;
  /** The service implementation and its background work, as the factory made it. */
  readonly handle: ServiceHandle<DescService>;
  /** Whether the server reports SERVING. */
  ready(): boolean;
  /** Stops taking calls, stops background work, then (if it opened it) the runtime. */
  stop(): Promise<void>;
}

export async function startComponent<S extends DescService>(
  definition: ComponentDefinition<S>,
  options: StartComponentOptions = {},
): Promise<RunningComponent> {
  const name = definition.name;
  const ownRuntime = options.runtime === undefined;
  const runtime =
    options.runtime ?? (await openMeshRuntime({ identities: [name], ...options.runtimeOptions }));
  const log = runtime.log.child({ component: name });
  const instanceId =
    options.instanceId ?? `${name}-${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  let handle: ServiceHandle<S> | undefined;
  let server: MeshServer | undefined;
  try {
    const certs = await runtime.certs(name);
    const clients = await runtime.clients(name);
    handle = await definition.create({
      name,
      instanceId,
      spiffeId: runtime.spiffeId(name),
      config: runtime.config,
      store: runtime.store,
      bus: runtime.bus,
      clients,
      metrics: runtime.metrics,
      log,
      runtime,
    });
    server = createServer({
      certs,
      authorizer: runtime.authorizerFor(name, instanceId),
      host: options.host ?? runtime.config.host,
      port: options.port ?? runtime.config.ports[name],
      logger: log,
      metrics: runtime.metrics,
    });
    server.add(definition.service, handle.impl);
    // Not serving until the background work runs and the store and policy are ready.
    let started = false;
    const srv = server;
    const update = () => {
      const state =
        started && runtime.store.health.status === "serving" && runtime.policy.ready
          ? "SERVING"
          : "NOT_SERVING";
      srv.health.set("", state);
      srv.health.set(definition.service.typeName, state);
    };
    update();
    const offStore = runtime.store.health.onChange(update);
    const offPolicy = runtime.policy.onEvent(update);
    await server.listen();
    runtime.setAddress(name, server.address);
    await handle.start?.();
    started = true;
    update();
    runtime.addReadiness(name, () => srv.health.get("") === "SERVING");
    log.info({ address: server.address, spiffeId: runtime.spiffeId(name) }, `${name} ready`);
    let stopping: Promise<void> | undefined;
    const h = handle;
    return {
      name,
      address: server.address,
      spiffeId: runtime.spiffeId(name),
      instanceId,
      server,
      runtime,
      handle: h as unknown as ServiceHandle<DescService>,
      ready: () => srv.health.get("") === "SERVING",
      stop() {
        stopping ??= (async () => {
          offStore();
          offPolicy();
          runtime.addReadiness(name, () => false);
          await srv.shutdown(options.graceMs ?? 5000);
          await Promise.resolve(h.stop?.()).catch((err: unknown) =>
            log.warn({ err }, "stop failed"),
          );
          if (ownRuntime) await runtime.close();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await server?.shutdown(0).catch(() => undefined);
    await Promise.resolve(handle?.stop?.()).catch(() => undefined);
    if (ownRuntime) await runtime.close();
    throw err;
  }
}
