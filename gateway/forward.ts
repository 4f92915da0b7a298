/**
 * The generic proxy: one Connect handler per public method, built from the
 * method's descriptor alone. A forwarded call is authorized here (policy with
 * the gateway as peer and the caller as principal), then made on the internal
 * service over mTLS as the gateway, carrying the principal, the caller's
 * deadline and cancellation. Server streams are passed through message by
 * message. Internal errors keep their code.
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { type CallOptions, createClient, type MeshChannel } from "../lib/rpc/client.js";
import { toConnectError } from "./errors.js";
import { authorize, type GuardOptions, principalOf } from "./guard.js";
import type { PublicMethod, Upstream } from "./public-api.js";

/** A handler the gateway implements itself (AdminService), after the guard. */
export type LocalHandler = (
  request: Message,
  ctx: HandlerContext,
  principal: Principal,
) => Promise<unknown>;

export interface RoutesOptions {
  methods: readonly PublicMethod[];
  guard: GuardOptions;
  /** One mTLS channel per internal service. */
  channels: Readonly<Record<Upstream, MeshChannel>>;
  /** Handlers of the methods whose upstream is `gateway`, by method local name. */
  local: Readonly<Record<string, LocalHandler>>;
  /** Deadline of a forwarded unary call when the client sets none. */
  defaultTimeoutMs: number;
}

type Forward = (request: Message, options: CallOptions) => unknown;

/** Registers every public method on `router`. */
export function registerPublicRoutes(router: ConnectRouter, options: RoutesOptions): void {
  for (const { method, upstream } of options.methods) {
    const impl =
      upstream === "gateway" ? localImpl(method, options) : forwardImpl(method, upstream, options);
    router.rpc(method, impl as never);
  }
}

function localImpl(method: DescMethod, options: RoutesOptions) {
  const handler = options.local[method.localName];
  if (!handler) throw new Error(`no gateway handler for ${method.parent.typeName}/${method.name}`);
  if (method.methodKind !== "unary") throw new Error(`${method.name}: only unary local methods`);
  return async (request: Message, ctx: HandlerContext) => {
    const principal = principalOf(ctx);
    await authorize(options.guard, method, request, principal);
    try {
      return await handler(request, ctx, principal);
    } catch (err) {
      throw toConnectError(err);
    }
  };
}

function forwardImpl(method: DescMethod, upstream: Upstream, options: RoutesOptions) {
  const client = createClient(method.parent, options.channels[upstream]) as unknown as Record<
    string,
    Forward
  >;
  const call = client[method.localName];
  if (!call) throw new Error(`no client method for ${method.parent.typeName}/${method.name}`);
  const callOptions = (ctx: HandlerContext, principal: Principal): CallOptions => ({
    principal,
    signal: ctx.signal,
    timeoutMs: ctx.timeoutMs() ?? (method.methodKind === "unary" ? options.defaultTimeoutMs : 0),
  });
  switch (method.methodKind) {
    case "unary":
      return async (request: Message, ctx: HandlerContext) => {
        const principal = principalOf(ctx);
        await authorize(options.guard, method, request, principal);
        try {
          return await (call(request, callOptions(ctx, principal)) as Promise<Message>);
        } catch (err) {
          throw toConnectError(err);
        }
      };
    case "server_streaming":
      return async function* (request: Message, ctx: HandlerContext) {
        const principal = principalOf(ctx);
        await authorize(options.guard, method, request, principal);
        try {
          yield* call(request, callOptions(ctx, principal)) as AsyncIterable<Message>;
        } catch (err) {
          throw toConnectError(err);
        }
      };
    default:
      // The policy needs the request, which a client stream does not have up front.
      throw new Error(`${method.name}: client and bidi streams are not forwarded by the gateway`);
  }
}
