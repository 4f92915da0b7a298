/**
 * The MCP server endpoint (Streamable HTTP, stateless) at `/mcp`: each goal
 * kind the caller's tenant can run is a tool (its name the goal kind, its
 * input schema the playbook's), and so is each live capability the policy
 * lets the caller run alone (`capability-tools.ts`, the goal kind
 * `capability.<name>`); calling a tool runs one goal. While the
 * goal runs, a client that sent a progress token gets a progress
 * notification per goal event (progress = events so far, the event's kind
 * and step as the message); the result is the goal's output as JSON text and,
 * when it is an object, as structured content. A failed or cancelled goal is
 * a tool result with `isError`; a call the mesh refuses (credentials, limits,
 * policy) is an MCP (JSON-RPC) error with the codes of `json-rpc.ts`, and a
 * policy denial is audited like every other.
 *
 * Every request is authenticated and admitted before the MCP server sees it
 * (`PublicCaller`), so an unauthenticated client gets HTTP 401 and no session
 * state exists to steal: each request gets its own server bound to its caller.
 */
import { create, type JsonObject, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  McpError,
} from "@modelcontextprotocol/sdk/types.js";
import { GoalStatus, type Principal } from "../../gen/agentmesh/v1/common_pb.js";
import {
  ExecutorService,
  GetGoalRequestSchema,
  type GetGoalResponse,
  type Goal,
  SubmitGoalRequestSchema,
  type SubmitGoalResponse,
  WatchGoalRequestSchema,
  type WatchGoalResponse,
} from "../../gen/agentmesh/v1/executor_pb.js";
import {
  ListPlaybooksRequestSchema,
  type ListPlaybooksResponse,
  PlannerService,
} from "../../gen/agentmesh/v1/planner_pb.js";
import type { Logger } from "../../lib/log/logger.js";
import type { NodeRequest, NodeResponse } from "../http-edge.js";
import { errorEnvelope } from "../protocols/json-rpc.js";
import type { PublicCaller } from "../protocols/public-caller.js";
import { readJsonBody } from "../protocols/read-body.js";
import { capabilityTools } from "./capability-tools.js";

export const mcpPath = "/mcp";

export interface McpOptions {
  caller: PublicCaller;
  log: Logger;
}

const executor = (name: string) => ExecutorService.methods.find((m) => m.name === name)!;
const submitGoal = executor("SubmitGoal");
const getGoal = executor("GetGoal");
const watchGoal = executor("WatchGoal");
const listPlaybooks = PlannerService.methods.find((m) => m.name === "ListPlaybooks")!;

/** Handles `/mcp`; returns false for every other request. */
export function mcpHandler(options: McpOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const { caller, log } = options;

  /** A JSON-RPC error for anything the mesh refused, as MCP carries it. */
  const mcpError = (err: unknown) => {
    if (err instanceof McpError) return err;
    const { body } = errorEnvelope(null, err);
    const error = body.error as { code: number; message: string; data: JsonObject };
    return new McpError(error.code, error.message, error.data);
  };

  function serverFor(principal: Principal): Server {
    const server = new Server(
      { name: "agentmesh", version: "1.0.0" },
      { capabilities: { tools: { listChanged: false } } },
    );
    server.setRequestHandler(ListToolsRequestSchema, async (_request, extra) => {
      try {
        const { playbooks } = await caller.unary<ListPlaybooksResponse>(
          "planner",
          listPlaybooks,
          create(ListPlaybooksRequestSchema, {}),
          { principal, signal: extra.signal },
        );
        return {
          tools: [
            ...playbooks.map((p) => ({
              name: p.goalKind,
              description: p.description || `run a goal of kind ${p.goalKind}`,
              inputSchema: { type: "object" as const, ...(p.inputSchema ?? {}) },
            })),
            ...(await capabilityTools(caller, principal, extra.signal)),
          ],
        };
      } catch (err) {
        throw mcpError(err);
      }
    });
    server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
      const ctx = { principal, signal: extra.signal };
      let goal: Goal;
      try {
        const submitted = await caller.unary<SubmitGoalResponse>(
          "executor",
          submitGoal,
          create(SubmitGoalRequestSchema, {
            kind: request.params.name,
            input: (request.params.arguments ?? {}) as JsonObject,
          }),
          ctx,
        );
        if (!submitted.goal) throw new McpError(-32603, "SubmitGoal returned no goal");
        goal = submitted.goal;
        const progressToken = request.params._meta?.progressToken;
        let progress = 0;
        for await (const { event } of caller.stream<WatchGoalResponse>(
          "executor",
          watchGoal,
          create(WatchGoalRequestSchema, { goalId: goal.goalId }),
          ctx,
        )) {
          if (!event) continue;
          progress++;
          if (progressToken !== undefined) {
            const step =
              "stepId" in (event.kind.value ?? {})
                ? (event.kind.value as { stepId: string }).stepId
                : "";
            await extra.sendNotification({
              method: "notifications/progress",
              params: {
                progressToken,
                progress,
                message: step ? `${event.kind.case} ${step}` : (event.kind.case ?? "event"),
              },
            });
          }
          if (event.kind.case === "finished") break;
        }
        const done = await caller.unary<GetGoalResponse>(
          "executor",
          getGoal,
          create(GetGoalRequestSchema, { goalId: goal.goalId }),
          ctx,
        );
        if (done.goal) goal = done.goal;
      } catch (err) {
        throw mcpError(err);
      }
      return toolResult(goal);
    });
    return server;
  }

  async function handle(req: NodeRequest, res: NodeResponse) {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith(":") || v === undefined) continue;
      headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    }
    let server: Server | undefined;
    try {
      const principal = await caller.admit(headers);
      const body =
        req.method === "POST"
          ? await readJsonBody(req, caller.requestLimits(principal.tenantId))
          : undefined;
      server = serverFor(principal);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.once("close", () => {
        void transport.close();
        void server?.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req as never, res as never, body);
    } catch (err) {
      if (res.headersSent) {
        res.end();
        return;
      }
      const { status, body, retryAfterS } = errorEnvelope(null, err);
      if (status === 200) log.debug({ err }, "mcp request failed");
      const extra: Record<string, string> = {};
      if (status === 401) extra["WWW-Authenticate"] = 'Bearer realm="agentmesh"';
      if (retryAfterS !== undefined) extra["Retry-After"] = String(retryAfterS);
      res.writeHead(status === 200 ? 400 : status, {
        "Content-Type": "application/json",
        ...extra,
      });
      res.end(JSON.stringify(body));
    }
  }

  return (req, res) => {
    if ((req.url ?? "/").split("?")[0] !== mcpPath) return false;
    void handle(req, res);
    return true;
  };
}

/** The tool result of a finished goal. */
function toolResult(goal: Goal): CallToolResult {
  if (goal.status === GoalStatus.SUCCEEDED) {
    const output = goal.output === undefined ? null : toJson(ValueSchema, goal.output);
    return {
      content: [{ type: "text", text: JSON.stringify(output) }],
      ...(typeof output === "object" && output !== null && !Array.isArray(output)
        ? { structuredContent: output }
        : {}),
    };
  }
  const error = goal.error;
  return {
    isError: true,
    content: [
      {
        type: "text",
        text: `goal ${goal.goalId} ${GoalStatus[goal.status].toLowerCase()}: ${error?.code ?? ""} ${error?.message ?? ""}`.trim(),
      },
    ],
  };
}
