/**
 * The built-in agents, by name, as `agentmesh agent <name>` and the embedded
 * mode start them. `mcp` needs a server to bridge and is started on its own
 * (see `agents/mcp.ts`); it is not imported here, so starting these does not
 * load the MCP SDK.
 */
import type { AgentDefinition } from "../sdk/agent/define-agent.js";
import { createDataAgent } from "./data.js";
import { createHttpAgent } from "./http.js";
import { createShellAgent } from "./shell.js";
import { textAgent } from "./text.js";
import { utilAgent } from "./util.js";

export const builtinAgents: Record<string, () => AgentDefinition> = {
  text: () => textAgent,
  data: () => createDataAgent(),
  http: () => createHttpAgent(),
  shell: () => createShellAgent(),
  util: () => utilAgent,
};
