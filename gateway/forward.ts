/**
 * The generic proxy: one Connect handler per public method, built from the
 * method's descriptor alone. A forwarded call is authorized here (policy with
 * the gateway as peer and the caller as principal), then made on the internal
 * service over mTLS as the gateway, carrying the principal, the caller's
 * deadline and cancellation. Server streams are passed through message by
 * message. Internal errors keep their code (`errorInterceptor` maps them).
 *
 * Responses to binary clients (protobuf over Connect, gRPC or gRPC-Web) are
 * passed through as bytes: the upstream's answer is split into its top-level
 * fields without decoding them, and those fields are written back verbatim as
 * the unknown fields of an otherwise empty response message. Decoding and
 * re-encoding a message full of `Struct`s costs far more than the rest of the
 * hop; JSON clients still get a decoded message, which JSON needs.
 */
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { type CallOptions, createClient, type MeshChannel } from "../lib/rpc/client.js";
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
    return handler(request, ctx, principal);
  };
}

/** One client method of `method`, reading the response as `output` (an opaque `Empty` keeps fields undecoded). */
function forwarder(method: DescMethod, channel: MeshChannel, output = method.output): Forward {
  const service = { methods: [{ ...method, output }] } as unknown as DescService;
  const client = createClient(service, channel) as unknown as Record<string, Forward>;
  const call = client[method.localName];
  if (!call) throw new Error(`no client method for ${method.parent.typeName}/${method.name}`);
  return call;
}

/** Whether the client reads protobuf (`application/proto`, `application/grpc`, `...+proto`). */
function wantsBinary(ctx: HandlerContext): boolean {
  const type = ctx.requestHeader.get("content-type");
  return type !== null && binaryContentType.test(type);
}
const binaryContentType =
  /^application\/(?:(?:connect\+|grpc-web\+|grpc\+)?proto|grpc|grpc-web)(?:;|$)/i;

/** A response of `method` whose encoding is the upstream's bytes, field for field. */
function passThrough(method: DescMethod, opaque: Message): Message {
  const message = create(method.output);
  if (opaque.$unknown) message.$unknown = opaque.$unknown;
  return message;
}

function forwardImpl(method: DescMethod, upstream: Upstream, options: RoutesOptions) {
  const call = forwarder(method, options.channels[upstream]);
  const callOpaque = forwarder(method, options.channels[upstream], EmptySchema);
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
        if (!wantsBinary(ctx)) {
          return (await call(request, callOptions(ctx, principal))) as Message;
        }
        const opaque = (await callOpaque(request, callOptions(ctx, principal))) as Message;
        return passThrough(method, opaque);
      };
    case "server_streaming":
      return async function* (request: Message, ctx: HandlerContext) {
        const principal = principalOf(ctx);
        await authorize(options.guard, method, request, principal);
        if (!wantsBinary(ctx)) {
          yield* call(request, callOptions(ctx, principal)) as AsyncIterable<Message>;
          return;
        }
        const opaque = callOpaque(request, callOptions(ctx, principal)) as AsyncIterable<Message>;
        for await (const m of opaque) yield passThrough(method, m);
      };
    default:
      // The policy needs the request, which a client stream does not have up front.
      throw new Error(`${method.name}: client and bidi streams are not forwarded by the gateway`);
  }
}
