/**
 * The MCP bridge (`agent-mcp-<server>`): starts a Model Context Protocol
 * server over stdio, lists its tools and offers each as the capability
 * `mcp.<server>.<tool>` with the tool's input schema, calling `tools/call`
 * per job. Any MCP server becomes a mesh agent with no code.
 *
 * A tool result with `isError` fails the step (not retryable: the tool said
 * no); a dead server fails it as retryable and is restarted on the next job.
 *
 * @example
 * const bridge = await createMcpAgent({
 *   server: "everything",
 *   command: process.execPath,
 *   args: ["node_modules/@modelcontextprotocol/server-everything/dist/index.js", "stdio"],
 * });
 * await runAgent(bridge.agent, { bus });
 * // ... later
 * await bridge.close();
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { createLogger, type Logger } from "../lib/log/logger.js";
import { AgentError } from "../sdk/agent/agent-error.js";
import {
  type AgentDefinition,
  defineAgent,
  type JsonSchema,
  type SideEffectName,
  type SkillDefinition,
} from "../sdk/agent/define-agent.js";

export interface McpAgentOptions {
  /** Server name, lowercase words joined by `-`; capabilities are `mcp.<server>.<tool>`. */
  server: string;
  /** Executable that starts the server. */
  command: string;
  args?: string[];
  /** Extra environment for the server (merged over a minimal default, not over this process's). */
  env?: Record<string, string>;
  cwd?: string;
  /** Time limit of one tool call unless the step's is shorter. Default 60 s. */
  callTimeoutMs?: number;
  /** Only these tools (by MCP name); default all. */
  tools?: string[];
  log?: Logger;
}

export interface McpBridge {
  agent: AgentDefinition;
  /** The MCP tools offered, by capability. */
  tools: Map<string, Tool>;
  close(): Promise<void>;
}

const serverPattern = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * A tool name as one word of a capability name (the contract's rule: lowercase
 * letters, digits, `_` and `-`, starting with a letter): lowercased, anything
 * else becomes `_`, and a leading non-letter gets a `t` in front.
 */
export function toolToken(name: string): string {
  const token = name
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "_")
    .slice(0, 64);
  return /^[a-z]/.test(token) ? token : `t${token}`.slice(0, 64);
}

export async function createMcpAgent(options: McpAgentOptions): Promise<McpBridge> {
  const { server } = options;
  if (!serverPattern.test(server)) {
    throw new MeshError(Code.InvalidArgument, `invalid MCP server name ${JSON.stringify(server)}`);
  }
  const log = options.log ?? createLogger({ name: `agent-mcp-${server}` });
  const callTimeoutMs = options.callTimeoutMs ?? 60_000;
  let client: Promise<Client> | undefined;
  let closed = false;

  const start = async (): Promise<Client> => {
    const transport = new StdioClientTransport({
      command: options.command,
      args: options.args ?? [],
      // PATH only by default: the server must not inherit this process's secrets.
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...options.env },
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stderr: "pipe",
    });
    transport.stderr?.on("data", (chunk: Buffer) =>
      log.debug({ server, stderr: chunk.toString().slice(0, 2_000) }, "mcp server stderr"),
    );
    const c = new Client({ name: `agentmesh-mcp-${server}`, version: "1.0.0" });
    c.onclose = () => {
      if (!closed) log.warn({ server }, "MCP server exited; it restarts on the next job");
      client = undefined;
    };
    await c.connect(transport);
    return c;
  };
  const connected = (): Promise<Client> => {
    client ??= start().catch((err) => {
      client = undefined;
      throw err;
    });
    return client;
  };

  let first: Client;
  try {
    first = await connected();
  } catch (err) {
    throw new MeshError(Code.Unavailable, `MCP server ${server} did not start: ${String(err)}`, {
      cause: err,
    });
  }
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await first.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);

  const offered = new Map<string, Tool>();
  // biome-ignore lint/suspicious/noExplicitAny: tool inputs are whatever each tool's schema says.
  const skills: Record<string, SkillDefinition<any, unknown>> = {};
  for (const tool of tools) {
    if (options.tools && !options.tools.includes(tool.name)) continue;
    const capability = `mcp.${server}.${toolToken(tool.name)}`;
    if (offered.has(capability)) {
      log.warn(
        { tool: tool.name, capability },
        "two tools map to one capability; keeping the first",
      );
      continue;
    }
    offered.set(capability, tool);
    skills[capability] = {
      description: tool.description ?? tool.title ?? tool.name,
      inputSchema: tool.inputSchema as JsonSchema,
      tags: ["mcp", server],
      ...sideEffectOf(tool),
      handler: async (input: Record<string, unknown>, ctx) => {
        let c: Client;
        try {
          c = await connected();
        } catch (err) {
          throw new AgentError(`MCP server ${server} is not running: ${String(err)}`, {
            code: "UNAVAILABLE",
          });
        }
        let result: Awaited<ReturnType<Client["callTool"]>>;
        try {
          result = await c.callTool({ name: tool.name, arguments: input }, undefined, {
            signal: ctx.signal,
            timeout: callTimeoutMs,
          });
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          throw new AgentError(`MCP call ${tool.name} failed: ${(err as Error).message}`, {
            code: "UNAVAILABLE",
          });
        }
        if (result.isError) {
          const text = textOf(result.content);
          throw AgentError.nonRetryable(text || `tool ${tool.name} reported an error`, {
            code: "TOOL_ERROR",
            details: { tool: tool.name },
          });
        }
        return {
          content: result.content ?? [],
          ...(result.structuredContent ? { structuredContent: result.structuredContent } : {}),
        };
      },
    };
  }
  if (offered.size === 0) {
    await first.close();
    throw new MeshError(Code.FailedPrecondition, `MCP server ${server} offers no tools`);
  }
  log.info({ server, tools: [...offered.keys()] }, "MCP tools offered as capabilities");

  const agent = defineAgent({
    name: `mcp-${server}`,
    version: "1.0.0",
    owner: "agentmesh",
    description: `MCP server ${server} (${options.command}) bridged into the mesh.`,
    labels: { bridge: "mcp", "mcp-server": server },
    skills,
  });
  return {
    agent,
    tools: offered,
    async close() {
      closed = true;
      const c = await client?.catch(() => undefined);
      await c?.close();
    },
  };
}

function textOf(content: unknown): string {
  if (!Array.isArray(content)) return "";
  return content
    .filter((c): c is { type: "text"; text: string } => c?.type === "text")
    .map((c) => c.text)
    .join("\n")
    .slice(0, 4_000);
}

/**
 * The side effect a tool's MCP annotations declare: read-only, else
 * idempotent when it says it is not destructive and idempotent, else
 * destructive (MCP's defaults). Nothing when it has no annotations: the
 * server made no claim (and hints are the server's word, not a guarantee).
 */
export function sideEffectOf(tool: Tool): { sideEffect?: SideEffectName } {
  const a = tool.annotations;
  if (a === undefined) return {};
  if (a.readOnlyHint === true) return { sideEffect: "read_only" };
  if (a.destructiveHint === false && a.idempotentHint === true) return { sideEffect: "idempotent" };
  return { sideEffect: "destructive" };
}
