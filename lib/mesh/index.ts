/**
 * Process bootstrap shared by every component and the embedded mode:
 * configuration, dev certificates, policy, store, bus, the mTLS server with
 * health and reflection, `/metrics` `/healthz` `/readyz`, clients to the other
 * components, and graceful shutdown.
 *
 * @example
 * import { onShutdownSignal, startComponent } from "../lib/mesh/index.js";
 * const running = await startComponent(executorComponent);
 * await onShutdownSignal(() => running.stop());
 */
export { type HealthHttpOptions, type HealthHttpServer, serveHealthHttp } from "./health-http.js";
export { createLazyClient, type Endpoint, type LazyClient } from "./lazy-client.js";
export {
  type ComponentName,
  componentNames,
  type MeshClients,
  type MeshRuntime,
  type MeshRuntimeOptions,
  openMeshRuntime,
} from "./mesh-runtime.js";
export { onShutdownSignal } from "./shutdown.js";
export {
  type ComponentDefinition,
  type ComponentDeps,
  type RunningComponent,
  type ServiceHandle,
  type StartComponentOptions,
  startComponent,
} from "./start-component.js";
