/**
 * What users of agentmesh import. The agent SDK (`defineAgent`, `runAgent`)
 * is here; typed clients of the public API join it as they land.
 */
export * from "./agent/index.js";
export * from "./client/index.js";
