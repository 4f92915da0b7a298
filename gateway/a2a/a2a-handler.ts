/**
 * The A2A endpoint (protocol v1.0, JSON-RPC binding): the agent card at
 * `/.well-known/agent-card.json` and JSON-RPC at `/a2a`. A message runs one
 * goal: the skill (goal kind) is named by `metadata.skill` of the message or
 * of the request, the input is the message's data part (an object; a
 * text-only message becomes `{ "text": ... }`), the message id is the goal's
 * idempotency key (a resent message returns the same task) and its context
 * id is kept as a label. Tasks are goals: `GetTask`, `CancelTask`,
 * `SubscribeToTask`; `SendMessage` answers when the goal has finished unless
 * `configuration.returnImmediately`; `SendStreamingMessage` streams the
 * task, then a status update per goal event, over SSE. The v0.3 method names
 * (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`,
 * `tasks/resubscribe`) are accepted as aliases with the same v1.0 shapes.
 *
 * Every call goes through the same door as the Connect API
 * (`PublicCaller`): credentials, the tenant's rate, streams and request
 * limits, then the policy on the internal request it makes, audited when it
 * denies. A goal of another tenant is not found (TaskNotFoundError).
 */
import { create, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import {
  CancelGoalRequestSchema,
  type CancelGoalResponse,
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
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import type { NodeRequest, NodeResponse } from "../http-edge.js";
import {
  errorEnvelope,
  JsonRpcError,
  type JsonRpcId,
  jsonRpcCodes,
  parseEnvelope,
  resultEnvelope,
} from "../protocols/json-rpc.js";
import type { PublicCaller } from "../protocols/public-caller.js";
import { readJsonBody } from "../protocols/read-body.js";
import { a2aPath, agentCard } from "./agent-card.js";
import { contextLabel, contextOf, isTerminal, streamResponsesOf, taskOf } from "./task-view.js";

export const agentCardPath = "/.well-known/agent-card.json";

/** A2A's own error codes (spec §5.4). */
const a2aCodes = { taskNotFound: -32001, taskNotCancelable: -32002, unsupportedOperation: -32004 };

export interface A2aOptions {
  caller: PublicCaller;
  /** Whether the listener is TLS (for the card's URL). */
  tls: boolean;
  log: Logger;
}

const method = (name: string) => {
  const m = ExecutorService.methods.find((x) => x.name === name);
  if (!m) throw new Error(`no ExecutorService/${name}`);
  return m;
};
const submitGoal = method("SubmitGoal");
const getGoal = method("GetGoal");
const cancelGoal = method("CancelGoal");
const watchGoal = method("WatchGoal");
const listPlaybooks = PlannerService.methods.find((m) => m.name === "ListPlaybooks")!;

const aliases: Record<string, string> = {
  "message/send": "SendMessage",
  "message/stream": "SendStreamingMessage",
  "tasks/get": "GetTask",
  "tasks/cancel": "CancelTask",
  "tasks/resubscribe": "SubscribeToTask",
  "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
};

/** Handles the A2A paths; returns false for every other request. */
export function a2aHandler(options: A2aOptions): (req: NodeRequest, res: NodeResponse) => boolean {
  const { caller, log } = options;
  const baseUrl = (req: NodeRequest) => {
    const host = req.headers[":authority"] ?? req.headers.host ?? "127.0.0.1";
    return `${options.tls ? "https" : "http"}://${host}`;
  };
  const headersOf = (req: NodeRequest) => {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith(":") || v === undefined) continue;
      headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    }
    return headers;
  };
  const playbooksOf = async (principal: Principal) =>
    (
      await caller.unary<ListPlaybooksResponse>(
        "planner",
        listPlaybooks,
        create(ListPlaybooksRequestSchema, {}),
        { principal },
      )
    ).playbooks;

  const sendJson = (
    res: NodeResponse,
    status: number,
    body: JsonValue,
    extra: Record<string, string> = {},
  ) => {
    res.writeHead(status, {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      ...extra,
    });
    res.end(JSON.stringify(body));
  };
  const sendError = (res: NodeResponse, id: JsonRpcId, err: unknown) => {
    const { status, body, retryAfterS } = errorEnvelope(id, err);
    if (status === 200 && !(err instanceof JsonRpcError)) log.debug({ err }, "a2a call failed");
    const extra: Record<string, string> = {};
    if (status === 401) extra["WWW-Authenticate"] = 'Bearer realm="agentmesh"';
    if (retryAfterS !== undefined) extra["Retry-After"] = String(retryAfterS);
    sendJson(res, status, body, extra);
  };

  async function card(req: NodeRequest, res: NodeResponse) {
    const headers = headersOf(req);
    const anonymous = !headers.has("authorization") && !headers.has("x-api-key");
    try {
      const playbooks = anonymous ? undefined : await playbooksOf(await caller.admit(headers));
      sendJson(res, 200, agentCard(baseUrl(req), playbooks));
    } catch (err) {
      sendError(res, null, err);
    }
  }

  async function rpc(req: NodeRequest, res: NodeResponse) {
    let id: JsonRpcId = null;
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    try {
      const principal = await caller.admit(headersOf(req));
      const envelope = parseEnvelope(
        await readJsonBody(req, caller.requestLimits(principal.tenantId)),
      );
      id = envelope.id;
      const name = aliases[envelope.method] ?? envelope.method;
      const ctx = { principal, signal: abort.signal };
      const params = envelope.params;
      switch (name) {
        case "SendMessage": {
          const goal = await submit(params, ctx);
          const blocking = !(objectAt(params, "configuration")?.returnImmediately === true);
          const done = blocking && !isTerminal(goal.status) ? await waitFor(goal, ctx) : goal;
          sendJson(res, 200, resultEnvelope(id, { task: taskOf(done) }));
          return;
        }
        case "SendStreamingMessage": {
          const goal = await submit(params, ctx);
          await stream(res, id, goal, ctx);
          return;
        }
        case "SubscribeToTask": {
          const goal = await fetchGoal(params, ctx);
          if (isTerminal(goal.status)) {
            throw new JsonRpcError(
              a2aCodes.unsupportedOperation,
              "task is already in a terminal state",
            );
          }
          await stream(res, id, goal, ctx);
          return;
        }
        case "GetTask":
          sendJson(res, 200, resultEnvelope(id, taskOf(await fetchGoal(params, ctx))));
          return;
        case "CancelTask": {
          const goal = await cancel(params, ctx);
          sendJson(res, 200, resultEnvelope(id, taskOf(goal)));
          return;
        }
        case "GetExtendedAgentCard":
          sendJson(
            res,
            200,
            resultEnvelope(id, agentCard(baseUrl(req), await playbooksOf(principal))),
          );
          return;
        default:
          throw new JsonRpcError(
            jsonRpcCodes.methodNotFound,
            `method not found: ${envelope.method}`,
          );
      }
    } catch (err) {
      if (res.headersSent) {
        // Mid-stream: the error is the stream's last event.
        writeEvent(res, errorEnvelope(id, err).body);
        res.end();
        return;
      }
      sendError(res, id, err);
    }
  }

  async function submit(params: JsonObject, ctx: { principal: Principal; signal: AbortSignal }) {
    const message = objectAt(params, "message");
    if (!message) throw invalidParams("params.message is required");
    const skill =
      stringAt(objectAt(message, "metadata"), "skill") ??
      stringAt(objectAt(params, "metadata"), "skill");
    if (!skill) {
      throw invalidParams(
        'name the skill (goal kind) in message.metadata.skill, e.g. {"skill": "echo"}',
      );
    }
    const input = inputOf(message);
    const messageId = stringAt(message, "messageId");
    const contextId = stringAt(message, "contextId");
    const { goal } = await caller.unary<SubmitGoalResponse>(
      "executor",
      submitGoal,
      create(SubmitGoalRequestSchema, {
        kind: skill,
        input,
        ...(messageId ? { idempotencyKey: `a2a:${messageId}` } : {}),
        labels: contextId ? { [contextLabel]: contextId } : {},
      }),
      ctx,
    );
    if (!goal) throw new MeshError(Code.Internal, "SubmitGoal returned no goal");
    return goal;
  }

  async function fetchGoal(params: JsonObject, ctx: { principal: Principal; signal: AbortSignal }) {
    const goalId = taskIdOf(params);
    try {
      const { goal } = await caller.unary<GetGoalResponse>(
        "executor",
        getGoal,
        create(GetGoalRequestSchema, { goalId }),
        ctx,
      );
      if (!goal) throw new MeshError(Code.NotFound, "no goal");
      return goal;
    } catch (err) {
      throw notFound(err, goalId);
    }
  }

  async function cancel(params: JsonObject, ctx: { principal: Principal; signal: AbortSignal }) {
    const current = await fetchGoal(params, ctx);
    if (isTerminal(current.status)) {
      throw new JsonRpcError(
        a2aCodes.taskNotCancelable,
        `task ${current.goalId} has already finished`,
      );
    }
    try {
      const { goal } = await caller.unary<CancelGoalResponse>(
        "executor",
        cancelGoal,
        create(CancelGoalRequestSchema, { goalId: current.goalId, reason: "cancelled over A2A" }),
        ctx,
      );
      return goal ?? current;
    } catch (err) {
      if (MeshError.from(err).code === Code.FailedPrecondition) {
        throw new JsonRpcError(a2aCodes.taskNotCancelable, MeshError.from(err).message);
      }
      throw notFound(err, current.goalId);
    }
  }

  function events(goal: Goal, ctx: { principal: Principal; signal: AbortSignal }) {
    return caller.stream<WatchGoalResponse>(
      "executor",
      watchGoal,
      create(WatchGoalRequestSchema, { goalId: goal.goalId }),
      ctx,
    );
  }

  async function waitFor(goal: Goal, ctx: { principal: Principal; signal: AbortSignal }) {
    for await (const { event } of events(goal, ctx)) {
      if (event?.kind.case === "finished") break;
    }
    return fetchGoal({ id: goal.goalId }, ctx);
  }

  async function stream(
    res: NodeResponse,
    id: JsonRpcId,
    goal: Goal,
    ctx: { principal: Principal; signal: AbortSignal },
  ) {
    const watching = events(goal, ctx)[Symbol.asyncIterator]();
    // The first read opens the watch (policy, stream limit) before the SSE headers go out.
    let next = await watching.next();
    res.writeHead(200, {
      "Content-Type": "text/event-stream",
      "Cache-Control": "no-cache",
      "X-Accel-Buffering": "no",
    });
    writeEvent(res, resultEnvelope(id, { task: taskOf(goal) }));
    const contextId = contextOf(goal);
    while (!next.done) {
      const event = next.value.event;
      if (event) {
        for (const r of streamResponsesOf(event, contextId)) writeEvent(res, resultEnvelope(id, r));
        if (event.kind.case === "finished") break;
      }
      next = await watching.next();
    }
    await watching.return?.();
    res.end();
  }

  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === agentCardPath) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      void card(req, res);
      return true;
    }
    if (path === a2aPath) {
      if (req.method !== "POST") {
        sendJson(res, 405, { error: "POST JSON-RPC requests to /a2a" }, { Allow: "POST" });
        return true;
      }
      void rpc(req, res);
      return true;
    }
    return false;
  };
}

function writeEvent(res: NodeResponse, body: JsonObject) {
  (res as { write(chunk: string): boolean }).write(`data: ${JSON.stringify(body)}\n\n`);
}

function invalidParams(message: string) {
  return new JsonRpcError(jsonRpcCodes.invalidParams, message);
}

function objectAt(o: JsonObject | undefined, key: string): JsonObject | undefined {
  const v = o?.[key];
  return typeof v === "object" && v !== null && !Array.isArray(v) ? v : undefined;
}

function stringAt(o: JsonObject | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === "string" && v !== "" ? v : undefined;
}

function taskIdOf(params: JsonObject): string {
  const id = stringAt(params, "id");
  if (!id) throw invalidParams("params.id (the task id) is required");
  return id;
}

/** The goal input of a message: its one data part, or its text parts as `{ text }`. */
function inputOf(message: JsonObject): JsonObject {
  const parts = Array.isArray(message.parts) ? message.parts : [];
  const data = parts.filter(
    (p) => typeof p === "object" && p !== null && !Array.isArray(p) && "data" in p,
  );
  if (data.length > 1)
    throw invalidParams("a message carries at most one data part (the goal input)");
  if (data.length === 1) {
    const value = (data[0] as JsonObject).data;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw invalidParams("the data part (the goal input) must be a JSON object");
    }
    return value;
  }
  const text = parts
    .map((p) => (typeof p === "object" && p !== null && !Array.isArray(p) ? p.text : undefined))
    .filter((t): t is string => typeof t === "string");
  if (text.length === 0) throw invalidParams("the message has no data or text part");
  return { text: text.join("\n") };
}

/** NOT_FOUND (including another tenant's goal) as A2A's TaskNotFoundError. */
function notFound(err: unknown, goalId: string): unknown {
  if (err instanceof JsonRpcError) return err;
  return MeshError.from(err).code === Code.NotFound
    ? new JsonRpcError(a2aCodes.taskNotFound, `task ${goalId} not found`)
    : err;
}
