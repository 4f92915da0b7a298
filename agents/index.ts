/** The built-in agents and their building blocks. */
export { builtinAgents } from "./builtin.js";
export { createDataAgent, transform } from "./data.js";
export { createHttpAgent, hostAllowed } from "./http.js";
export { JsonataSandbox } from "./jsonata-sandbox.js";
export { createMcpAgent, type McpAgentOptions, type McpBridge } from "./mcp.js";
export { createShellAgent, type ShellAuditEvent } from "./shell.js";
export { keywords, summarize, textAgent, textStats } from "./text.js";
export { utilAgent } from "./util.js";
