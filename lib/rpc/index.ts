/**
 * The secure RPC spine: grpc-js over mutual TLS, generic over protobuf-es
 * service descriptors, with SPIFFE identities, a policy check on every call,
 * interceptors, health and reflection.
 *
 * @example
 * import { createServer, createChannel, createClient } from "../lib/rpc/index.js";
 * import { watchCertificates } from "../lib/tls/index.js";
 *
 * const server = createServer({ certs: await watchCertificates({ dir: `${certDir}/registry` }), authorizer });
 * server.add(RegistryService, handlers);
 * await server.listen();
 *
 * const channel = createChannel({ address: server.address, certs, server: spiffeId({ name: "registry" }) });
 * const registry = createClient(RegistryService, channel);
 * await registry.getAgent({ agentId }, { timeoutMs: 1000 });
 */
export type {
  AuthorizationRequest,
  Authorizer,
  Decision,
  PeerIdentity,
} from "./authorizer.js";
export { principalMetadataKey } from "./authorizer.js";
export { type CallScope, currentScope } from "./call-scope.js";
export {
  type CallOptions,
  type Client,
  type ClientMethod,
  createChannel,
  createClient,
  type MeshChannel,
  type MeshChannelOptions,
} from "./client.js";
export { loggerKey, peerKey, principalKey, spanKey } from "./context-keys.js";
export {
  type ContextKey,
  type ContextValues,
  createContextKey,
  createContextValues,
} from "./context-values.js";
export type { HandlerContext, MethodImpl, ServiceImpl } from "./handler.js";
export type { HealthState, HealthStatus } from "./health.js";
export {
  applyInterceptors,
  type CallSide,
  type Interceptor,
  type MeshCall,
  type MeshResponse,
  type Next,
} from "./interceptor.js";
export { createServer, type MeshServer, type ServerOptions } from "./server.js";
export { errorTrailerKey, fromStatus, toStatus } from "./status.js";
