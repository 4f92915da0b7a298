/**
 * One interceptor shape for servers and clients, layered like an onion:
 * `(next) => (call) => Promise<response>`. The built-in ones (metrics, tracing
 * and logging, deadline, identity, authorization) are interceptors of the same
 * shape, in a fixed order; yours run inside them, nearest the handler (server)
 * or the wire (client).
 *
 * For unary and server-streaming methods `call.request` is the message; for
 * client-streaming and bidi methods it is an `AsyncIterable` of messages. The
 * response is a message for unary and client-streaming methods and an
 * `AsyncIterable` for server-streaming and bidi methods.
 *
 * @example
 * const timing: Interceptor = (next) => async (call) => {
 *   const t0 = performance.now();
 *   try {
 *     return await next(call);
 *   } finally {
 *     console.log(call.method.name, performance.now() - t0);
 *   }
 * };
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";
import type { ContextValues } from "./context-values.js";

/** Which end of the call an interceptor runs on. */
export type CallSide = "server" | "client";

/** One call as interceptors see it. */
export interface MeshCall {
  readonly side: CallSide;
  readonly method: DescMethod;
  /** Message (unary, server-streaming) or stream of messages (client-streaming, bidi). */
  request: Message | AsyncIterable<Message>;
  /** Request metadata: as received (server) or about to be sent (client). */
  readonly metadata: Metadata;
  /** Aborts when the call is cancelled, times out or the peer goes away. */
  readonly signal: AbortSignal;
  /** Absolute deadline in ms since the epoch; undefined means none. */
  deadline: number | undefined;
  /** Typed per-call values (peer, principal, logger, trace, yours). */
  readonly values: ContextValues;
}

/** Message (unary, client-streaming) or stream of messages (server-streaming, bidi). */
export type MeshResponse = Message | AsyncIterable<Message>;

export type Next = (call: MeshCall) => Promise<MeshResponse>;

export type Interceptor = (next: Next) => Next;

/** Wraps `last` in `interceptors`, the first being outermost. */
export function applyInterceptors(last: Next, interceptors: readonly Interceptor[]): Next {
  let next = last;
  for (let i = interceptors.length - 1; i >= 0; i--) next = (interceptors[i] as Interceptor)(next);
  return next;
}

/** True for methods whose request is a stream. */
export function isStreamingRequest(method: DescMethod): boolean {
  return method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
}

/** True for methods whose response is a stream. */
export function isStreamingResponse(method: DescMethod): boolean {
  return method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
}
