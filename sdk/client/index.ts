/**
 * Typed clients of the public API and goal result helpers (browser-safe: no
 * Node built-ins); `agentmesh/sdk/client` in a browser bundle.
 *
 * @example
 * const mesh = createClient({ baseUrl: location.origin, apiKey });
 * const { agents } = await mesh.registry.listAgents({});
 */
export { bearerAuth, type ClientOptions, createClient, type MeshClient } from "./create-client.js";
export { applyGoalEvent } from "./goal-events.js";
export { goalStatusName, isFinished, outputJson } from "./goal-result.js";
