/**
 * What service implementers write: one function per RPC, typed from the
 * protobuf-es service descriptor, receiving the request and a `HandlerContext`.
 *
 * | method kind | handler |
 * | --- | --- |
 * | unary | `(req, ctx) => Response \| Promise<Response>` |
 * | server streaming | `(req, ctx) => AsyncIterable<Response>` (an `async function*`) |
 * | client streaming | `(reqs: AsyncIterable<Request>, ctx) => Promise<Response>` |
 * | bidi streaming | `(reqs: AsyncIterable<Request>, ctx) => AsyncIterable<Response>` |
 *
 * Responses may be plain init objects (`{ agent: {...} }`); they are passed
 * through `create()`. Decoded `bytes` fields share the request's buffer: copy
 * them (`bytes.slice()`) before keeping them beyond the call.
 *
 * @example
 * const registry: ServiceImpl<typeof RegistryService> = {
 *   async getAgent(req, ctx) {
 *     ctx.log.info({ id: req.agentId, caller: ctx.peer.name }, "get agent");
 *     return { agent: await store.get(req.agentId, { signal: ctx.signal }) };
 *   },
 *   async *watchAgents(req, ctx) {
 *     for await (const change of changes(ctx.signal)) yield { change };
 *   },
 * };
 */
import type { DescMethod, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { Metadata } from "@grpc/grpc-js";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import type { Logger } from "../log/logger.js";
import type { PeerIdentity } from "./authorizer.js";
import type { ContextValues } from "./context-values.js";

/** Everything a handler knows about its call. */
export interface HandlerContext {
  readonly method: DescMethod;
  /** The caller, from its verified certificate. */
  readonly peer: PeerIdentity;
  /** The delegated principal, present only when the policy trusts the peer to delegate. */
  readonly principal: Principal | undefined;
  /** Aborts on cancellation, deadline or disconnect; pass it to everything the handler awaits. */
  readonly signal: AbortSignal;
  /** Absolute deadline in ms since the epoch, or undefined for none. */
  readonly deadline: number | undefined;
  /** Logger carrying the trace id, span id and method. */
  readonly log: Logger;
  /** W3C trace id of this call. */
  readonly traceId: string;
  /** Request metadata as received. */
  readonly metadata: Metadata;
  /** Typed per-call values set by interceptors. */
  readonly values: ContextValues;
}

type Req<M extends Pick<DescMethod, "input">> = MessageShape<M["input"]>;
type Res<M extends Pick<DescMethod, "output">> = MessageInitShape<M["output"]>;

/** The handler for one method, by its kind. */
export type MethodImpl<M extends Pick<DescMethod, "input" | "output" | "methodKind">> =
  M["methodKind"] extends "unary"
    ? (request: Req<M>, ctx: HandlerContext) => Res<M> | Promise<Res<M>>
    : M["methodKind"] extends "server_streaming"
      ? (request: Req<M>, ctx: HandlerContext) => AsyncIterable<Res<M>>
      : M["methodKind"] extends "client_streaming"
        ? (requests: AsyncIterable<Req<M>>, ctx: HandlerContext) => Promise<Res<M>>
        : (requests: AsyncIterable<Req<M>>, ctx: HandlerContext) => AsyncIterable<Res<M>>;

/**
 * An implementation of a service: one handler per method, by its local name
 * (`getAgent` for `GetAgent`). A method without a handler answers UNIMPLEMENTED.
 */
export type ServiceImpl<S extends DescService> = S extends {
  method: infer Methods extends GenServiceMethods;
}
  ? { [K in keyof Methods]?: MethodImpl<Methods[K]> }
  : Record<string, AnyHandler>;

/** A handler with its types erased, as the server stores it. */
// biome-ignore lint/suspicious/noExplicitAny: the erased form of the typed handlers above.
export type AnyHandler = (request: any, ctx: HandlerContext) => any;
