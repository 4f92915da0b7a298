/**
 * Typed clients for the public API, over the gateway, in Node and browsers.
 *
 * `createClient` authenticates every call with an API key or a JWT and
 * returns one Connect client per public service. The default transport is
 * `fetch`-based (`@connectrpc/connect-web`), so the same code runs in a
 * browser and in Node ≥ 20; pass your own `transport` for anything else
 * (e.g. gRPC over HTTP/2 with `@connectrpc/connect-node`), given the
 * authentication interceptor.
 *
 * @example
 * import { createClient } from "agentmesh/sdk";
 * const mesh = createClient({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.AGENTMESH_API_KEY });
 * const { goal } = await mesh.executor.submitGoal({ kind: "research", input: { topic: "tides" } });
 * for await (const { event } of mesh.executor.watchGoal({ goalId: goal!.goalId })) {
 *   console.log(event?.kind.case);
 * }
 */
import {
  type Client,
  createClient as createConnectClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AdminService } from "../../gen/agentmesh/v1/admin_pb.js";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";

export interface ClientOptions {
  /** The gateway, e.g. `https://mesh.example.com` or `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** An API key (`am_<id>_<secret>`), sent as `Authorization: Bearer`. */
  apiKey?: string | undefined;
  /** A JWT, sent as `Authorization: Bearer` (when no `apiKey`). */
  token?: string | (() => string | Promise<string>) | undefined;
  /** Wire protocol of the default transport: `connect` (default, JSON) or `grpc-web` (binary). */
  protocol?: "connect" | "grpc-web";
  /** Binary protobuf instead of JSON for `connect`. Default false (JSON is easier to debug). */
  binary?: boolean;
  /** Deadline of each call without its own `timeoutMs`. Default none. */
  defaultTimeoutMs?: number;
  /**
   * Builds a transport of your own from the interceptors (authentication
   * first); then `protocol`, `binary` and `fetch` are ignored. E.g. gRPC over
   * HTTP/2 in Node:
   * `({ interceptors }) => createGrpcTransport({ baseUrl, interceptors })`.
   */
  transport?: (options: { interceptors: Interceptor[] }) => Transport;
  /** More interceptors, after authentication. */
  interceptors?: Interceptor[];
  /** Custom fetch (tests, proxies). */
  fetch?: typeof globalThis.fetch;
}

/** One typed client per public service. */
export interface MeshClient {
  executor: Client<typeof ExecutorService>;
  /** The read side: GetAgent, ListAgents, FindAgents, WatchAgents, ListTools. */
  registry: Client<typeof RegistryService>;
  /** Playbooks and ExplainPlan. */
  planner: Client<typeof PlannerService>;
  /** Statistics, experiences, reliability, training. */
  learning: Client<typeof LearningService>;
  /** Tenants and API keys. */
  admin: Client<typeof AdminService>;
  /** The transport in use (to build clients of your own). */
  transport: Transport;
}

/** Adds `Authorization: Bearer <credential>` to every call. */
export function bearerAuth(credential: string | (() => string | Promise<string>)): Interceptor {
  return (next) => async (req) => {
    const value = typeof credential === "function" ? await credential() : credential;
    req.header.set("Authorization", `Bearer ${value}`);
    return next(req);
  };
}

export function createClient(options: ClientOptions): MeshClient {
  const credential = options.apiKey ?? options.token;
  const interceptors = [
    ...(credential ? [bearerAuth(credential)] : []),
    ...(options.interceptors ?? []),
  ];
  const transport = options.transport
    ? options.transport({ interceptors })
    : (options.protocol === "grpc-web" ? createGrpcWebTransport : createConnectTransport)({
        baseUrl: options.baseUrl,
        interceptors,
        useBinaryFormat: options.protocol === "grpc-web" || options.binary === true,
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.defaultTimeoutMs ? { defaultTimeoutMs: options.defaultTimeoutMs } : {}),
      });
  return {
    executor: createConnectClient(ExecutorService, transport),
    registry: createConnectClient(RegistryService, transport),
    planner: createConnectClient(PlannerService, transport),
    learning: createConnectClient(LearningService, transport),
    admin: createConnectClient(AdminService, transport),
    transport,
  };
}
