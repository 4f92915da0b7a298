/**
 * The built-in agents, by name, as `agentmesh agent <name>` and the embedded
 * mode start them. `mcp` needs a server to bridge and is started on its own
 * (see `agents/mcp.ts`).
 */
import type { AgentDefinition } from "../sdk/agent/define-agent.js";
import { createDataAgent } from "./data.js";
import { createHttpAgent } from "./http.js";
import { createShellAgent } from "./shell.js";
import { textAgent } from "./text.js";
import { utilAgent } from "./util.js";

export { createDataAgent, dataAgent, transform } from "./data.js";
export { createHttpAgent, hostAllowed } from "./http.js";
export { createMcpAgent, type McpAgentOptions, type McpBridge } from "./mcp.js";
export { createShellAgent, type ShellAuditEvent } from "./shell.js";
export { keywords, summarize, textAgent, textStats } from "./text.js";
export { utilAgent } from "./util.js";

/** Factories of the built-in agents, configured from the environment. */
export const builtinAgents: Record<string, () => AgentDefinition> = {
  text: () => textAgent,
  data: () => createDataAgent(),
  http: () => createHttpAgent(),
  shell: () => createShellAgent(),
  util: () => utilAgent,
};
