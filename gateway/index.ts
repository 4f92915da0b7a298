/**
 * The Connect gateway: the only door from outside into the mesh.
 *
 * @example
 * import { ensureBootstrapAdmin, startGateway } from "../gateway/index.js";
 * const { keyPath } = await ensureBootstrapAdmin({ store, home: config.home });
 * const gateway = await startGateway({ store, authorizer, certs, upstreams, port: config.ports.gateway });
 * // curl -H "Authorization: Bearer $(cat .agentmesh/admin.key)" -H 'content-type: application/json' \
 * //   -d '{}' $URL/agentmesh.v1.ExecutorService/ListGoals
 */
export { adminHandlers, effectiveRoles, roleIncludes } from "./admin-service.js";
export { type ApiKeyAuthenticator, apiKeyAuthenticator } from "./api-key-auth.js";
export { type Authenticate, createAuthenticator } from "./authenticate.js";
export { type BootstrapOptions, type BootstrapResult, ensureBootstrapAdmin } from "./bootstrap.js";
export { toConnectError } from "./errors.js";
export { principalContextKey } from "./guard.js";
export { type JwtAuthenticator, type JwtOptions, jwtAuthenticator } from "./jwt-auth.js";
export {
  type PublicMethod,
  type PublicService,
  publicApi,
  publicMethods,
  publicServices,
  type Upstream,
} from "./public-api.js";
export {
  createRecentDecisions,
  type RecentDecision,
  type RecentDecisions,
} from "./recent-decisions.js";
export { type Gateway, type GatewayOptions, startGateway } from "./start-gateway.js";
export {
  createTenantLimits,
  type TenantLimits,
  type TenantLimitsOptions,
} from "./tenant-limits.js";
