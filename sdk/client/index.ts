/**
 * Typed clients of the public API (browser-safe: no Node built-ins).
 *
 * @example
 * const mesh = createClient({ baseUrl: location.origin, apiKey });
 * const { agents } = await mesh.registry.listAgents({});
 */
export { bearerAuth, type ClientOptions, createClient, type MeshClient } from "./create-client.js";
