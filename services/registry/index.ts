/**
 * The registry service: agents, tools, leases and discovery over mTLS gRPC.
 *
 * @example
 * import { createRegistryService } from "../services/registry/index.js";
 * const registry = createRegistryService({ store, log, learning });
 * server.add(RegistryService, registry.impl);
 * await registry.start();
 */
export type { AgentFeed, AgentFeedEvent, AgentFeedOptions } from "./agent-feed.js";
export { createAgentFeed } from "./agent-feed.js";
export {
  createRegistryService,
  type RegistryServiceDeps,
  type RegistryServiceHandle,
} from "./registry-service.js";
