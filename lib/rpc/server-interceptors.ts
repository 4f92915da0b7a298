/**
 * The server's built-in interceptors, in the order the server applies them:
 *
 * 1. `serverMetrics`   count, latency and errors per method
 * 2. `serverTracing`   W3C trace context in, span, per-call logger; normalises
 *                      errors (anything not a MeshError → INTERNAL) and logs them
 * 3. `serverDeadline`  rejects calls whose deadline has passed; hands it on
 * 4. `serverIdentity`  the caller's SPIFFE ID from the verified certificate
 * 5. `serverValidate`  the request against the contract's `buf.validate` rules
 *                      (INVALID_ARGUMENT naming each field), so the policy and
 *                      the handler only ever see well-formed requests
 * 6. `serverAuthorize` the policy check (fail closed), delegated principal
 *
 * then the interceptors given to `createServer`, then the handler.
 */
import { TLSSocket } from "node:tls";
import { type DescMessage, type DescMethod, fromBinary, type Message } from "@bufbuild/protobuf";
import { context as otelContext, type SpanContext, SpanStatusCode } from "@opentelemetry/api";
import { type Principal, PrincipalSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { peerFromSubjectAltName } from "../identity/spiffe.js";
import type { Logger } from "../log/logger.js";
import { checkMessage } from "../proto/validate-message.js";
import { emitSecurityEvent } from "../siem/siem.js";
import type { MeshMetrics } from "../telemetry/metrics.js";
import {
  activeSpanContext,
  parseTraceparent,
  startRpcSpan,
  traceparentKey,
} from "../telemetry/trace-context.js";
import {
  type Authorizer,
  type Decision,
  type PeerIdentity,
  principalMetadataKey,
} from "./authorizer.js";
import {
  loggerKey,
  peerKey,
  principalKey,
  scopeKey,
  spanKey,
  type TransportCall,
  transportKey,
} from "./context-keys.js";
import {
  type Interceptor,
  isStreamingRequest,
  isStreamingResponse,
  type MeshCall,
  type MeshResponse,
  type Next,
} from "./interceptor.js";
import { observeStream } from "./stream-util.js";

/** Full method path `/pkg.Service/Method`, the label used in metrics and logs. */
export function methodPath(call: MeshCall): string {
  let path = methodPaths.get(call.method);
  if (path === undefined) {
    path = `/${call.method.parent.typeName}/${call.method.name}`;
    methodPaths.set(call.method, path);
  }
  return path;
}

// Built once per method, not per call.
const methodPaths = new WeakMap<DescMethod, string>();

/** 1. Request count, latency histogram and errors per method. */
export function serverMetrics(metrics: MeshMetrics): Interceptor {
  return (next) => (call) => observeCall(metrics, "server", call, next(call));
}

/** Shared by server and client metrics: records when the call (or its stream) ends. */
export function observeCall(
  metrics: MeshMetrics,
  side: "server" | "client",
  call: MeshCall,
  result: Promise<MeshResponse>,
): Promise<MeshResponse> {
  const t0 = performance.now();
  const tally = metrics.calls.of(side, call.method);
  const seconds = () => (performance.now() - t0) / 1000;
  return result.then(
    (res) => {
      if (!isStreamingResponse(call.method)) {
        tally.record(Code.Ok, seconds());
        return res;
      }
      return observeStream(res as AsyncIterable<never>, (err) => {
        // A stream the handler ended because the call was cancelled did not succeed.
        if (err === undefined && call.signal.aborted) err = call.signal.reason;
        tally.record(err === undefined ? Code.Ok : MeshError.from(err).code, seconds());
      });
    },
    (err: unknown) => {
      tally.record(MeshError.from(err).code, seconds());
      throw err;
    },
  );
}

export interface ServerTracingOptions {
  logger: Logger;
}

/**
 * 2. Starts the server span from the caller's `traceparent`, gives the call a
 * logger carrying the trace id, runs the rest inside the OpenTelemetry
 * context, and turns whatever is thrown into a MeshError: INTERNAL errors are
 * logged with their cause and reach the caller as a generic message.
 */
export function serverTracing(options: ServerTracingOptions): Interceptor {
  const base = options.logger;
  return (next) => (call) => {
    const path = methodPath(call);
    const parent = parseTraceparent(call.metadata.get(traceparentKey)[0] as string | undefined);
    const started = startRpcSpan(path, "server", parent);
    const sc = started.spanContext;
    call.values.set(spanKey, sc);
    const scope = call.values.get(scopeKey);
    if (scope) scope.spanContext = sc;
    const getLog = lazyLogger(base, sc, path);
    call.values.set(loggerKey, getLog);
    let result: Promise<MeshResponse>;
    try {
      // Without an SDK there is no context to enter (the call scope carries the span).
      result =
        started.context === undefined
          ? next(call)
          : otelContext.with(started.context, () => next(call));
    } catch (err) {
      result = Promise.reject(err);
    }
    return result.then(
      (res) => {
        if (!isStreamingResponse(call.method)) {
          started.span.end();
          return res;
        }
        return observeStream(
          res as AsyncIterable<never>,
          (err) => {
            if (err !== undefined) {
              const mesh = normalise(err);
              logFailure(getLog(), call, mesh, err);
              started.span.setStatus({ code: SpanStatusCode.ERROR, message: mesh.codeName });
            }
            started.span.end();
          },
          normalise,
        );
      },
      (err: unknown): never => {
        const mesh = normalise(err);
        logFailure(getLog(), call, mesh, err);
        started.span.setStatus({ code: SpanStatusCode.ERROR, message: mesh.codeName });
        started.span.end();
        throw mesh;
      },
    );
  };
}

/** A pino child per call costs more than the rest of the tracing interceptor: made on first use. */
function lazyLogger(base: Logger, sc: SpanContext, path: string): () => Logger {
  let log: Logger | undefined;
  return () => {
    log ??= base.child({ traceId: sc.traceId, spanId: sc.spanId, method: path });
    return log;
  };
}

/** Anything thrown → MeshError; non-MeshErrors become INTERNAL with a generic message. */
function normalise(err: unknown): MeshError {
  if (err instanceof MeshError) return err;
  if (err instanceof Error && err.name === "AbortError") {
    return new MeshError(Code.Canceled, "call was cancelled", { cause: err });
  }
  // Never trust a foreign `code` from a handler's exception: only MeshErrors choose codes.
  return new MeshError(Code.Internal, "internal error", { cause: err });
}

function logFailure(log: Logger, call: MeshCall, mesh: MeshError, original: unknown): void {
  if (mesh.code === Code.Internal || mesh.code === Code.Unknown || mesh.code === Code.DataLoss) {
    log.error(
      { err: original, code: mesh.codeName, peer: call.values.get(peerKey)?.spiffeId },
      "call failed",
    );
  } else if (mesh.code === Code.PermissionDenied || mesh.code === Code.Unauthenticated) {
    // Security events are logged by the identity and authorization interceptors.
  } else if (log.isLevelEnabled("debug")) {
    log.debug({ code: mesh.codeName, message: mesh.message }, "call failed");
  }
}

/** 3. Rejects calls already past their deadline and hands the deadline to outgoing calls. */
export function serverDeadline(): Interceptor {
  return (next) => (call) => {
    if (call.deadline !== undefined && call.deadline <= Date.now()) {
      return Promise.reject(
        new MeshError(Code.DeadlineExceeded, "deadline exceeded before the call started"),
      );
    }
    const scope = call.values.get(scopeKey);
    if (scope) scope.deadline = call.deadline;
    return next(call);
  };
}

export interface ServerIdentityOptions {
  logger: Logger;
}

// The verified identity of a TLS connection cannot change during its life
// (renegotiation is disabled on first sight), so it is read from the peer
// certificate once per connection: getPeerCertificate() costs tens of µs.
const socketPeers = new WeakMap<TLSSocket, PeerIdentity | null>();

/** grpc-js keeps the socket private: ServerUnaryCallImpl.call → BaseServerInterceptingCall.stream.session.socket. */
function tlsSocketOf(transport: TransportCall): TLSSocket | undefined {
  const socket = (transport as { call?: { stream?: { session?: { socket?: unknown } } } }).call
    ?.stream?.session?.socket;
  return socket instanceof TLSSocket ? socket : undefined;
}

function readPeer(transport: TransportCall): PeerIdentity | null {
  const san = transport.getAuthContext().sslPeerCertificate?.subjectaltname;
  return san === undefined ? null : (peerFromSubjectAltName(san) ?? null);
}

/** The caller's identity from the verified peer certificate of the call's connection. */
export function peerOf(transport: TransportCall | undefined): PeerIdentity | undefined {
  if (!transport) return undefined;
  const socket = tlsSocketOf(transport);
  if (!socket) return readPeer(transport) ?? undefined;
  let peer = socketPeers.get(socket);
  if (peer === undefined) {
    peer = readPeer(transport);
    socket.disableRenegotiation();
    socketPeers.set(socket, peer);
  }
  return peer ?? undefined;
}

/**
 * 4. The caller's SPIFFE ID from the verified peer certificate
 * (`getAuthContext().sslPeerCertificate`, cached per connection). No metadata
 * can set it. A certificate without exactly one valid SPIFFE ID is UNAUTHENTICATED.
 */
export function serverIdentity(options: ServerIdentityOptions): Interceptor {
  return (next) => (call) => {
    const transport = call.values.get(transportKey);
    const peer = peerOf(transport);
    if (!peer) {
      options.logger.warn(
        {
          event: "security",
          reason: "no_spiffe_id",
          method: methodPath(call),
          remote: transport?.getPeer(),
        },
        "call rejected: the peer certificate carries no valid SPIFFE ID",
      );
      return Promise.reject(
        new MeshError(Code.Unauthenticated, "peer certificate has no valid SPIFFE ID"),
      );
    }
    call.values.set(peerKey, peer);
    return next(call);
  };
}

/**
 * 5. Checks the request (each request message of a client stream) against the
 * `buf.validate` rules of the contract; a violation is INVALID_ARGUMENT with
 * the field paths, before the policy or the handler runs.
 */
export function serverValidate(): Interceptor {
  return (next) => (call) => {
    const schema = call.method.input;
    if (isStreamingRequest(call.method)) {
      call.request = checkedStream(schema, call.request as AsyncIterable<Message>);
      return next(call);
    }
    try {
      checkMessage(schema, call.request as Message);
    } catch (err) {
      return Promise.reject(err);
    }
    return next(call);
  };
}

async function* checkedStream(
  schema: DescMessage,
  messages: AsyncIterable<Message>,
): AsyncIterable<Message> {
  for await (const m of messages) {
    checkMessage(schema, m);
    yield m;
  }
}

export interface ServerAuthorizeOptions {
  authorizer: Authorizer;
  logger: Logger;
  metrics: MeshMetrics;
}

/**
 * 6. The policy check. Every call is decided; a denial, a throwing authorizer
 * or a malformed answer is PERMISSION_DENIED (fail closed). The principal from
 * `x-agentmesh-principal-bin` is offered to the authorizer and exposed to the
 * handler only when the decision trusts it.
 */
export function serverAuthorize(options: ServerAuthorizeOptions): Interceptor {
  const { authorizer } = options;
  return (next) => (call) => {
    let principal: Principal | undefined;
    const raw = call.metadata.get(principalMetadataKey)[0];
    if (raw !== undefined) {
      try {
        if (!(raw instanceof Buffer)) throw new Error("not binary");
        principal = fromBinary(PrincipalSchema, raw);
      } catch (err) {
        return Promise.reject(
          new MeshError(Code.InvalidArgument, `malformed ${principalMetadataKey} metadata`, {
            cause: err,
          }),
        );
      }
    }
    const peer = call.values.get(peerKey);
    let answer: Decision | Promise<Decision>;
    try {
      answer = authorizer({
        peer,
        principal,
        method: call.method,
        request: isStreamingRequest(call.method) ? undefined : (call.request as never),
      });
    } catch (err) {
      return deny(options, call, peer, principal, "authorization failed", err);
    }
    if (answer instanceof Promise) {
      return answer.then(
        (decision) => decide(options, next, call, peer, principal, decision),
        (err: unknown) => deny(options, call, peer, principal, "authorization failed", err),
      );
    }
    return decide(options, next, call, peer, principal, answer);
  };
}

/** Runs the call if `decision` allows it (anything but a well-formed allow is a denial). */
function decide(
  options: ServerAuthorizeOptions,
  next: Next,
  call: MeshCall,
  peer: PeerIdentity | undefined,
  principal: Principal | undefined,
  decision: Decision,
): Promise<MeshResponse> {
  if (typeof decision !== "object" || decision === null || decision.allow !== true) {
    const reason =
      typeof decision?.reason === "string" && decision.reason
        ? decision.reason
        : "denied by policy";
    return deny(options, call, peer, principal, reason);
  }
  if (principal !== undefined && decision.principalTrusted === true)
    call.values.set(principalKey, principal);
  return next(call);
}

/** Counts, logs (a security event) and rejects a denied call. */
function deny(
  options: ServerAuthorizeOptions,
  call: MeshCall,
  peer: PeerIdentity | undefined,
  principal: Principal | undefined,
  reason: string,
  cause?: unknown,
): Promise<never> {
  options.metrics.rpcDenials.inc({
    service: call.method.parent.typeName,
    method: call.method.name,
  });
  options.logger.warn(
    {
      event: "security",
      reason: "denied",
      method: methodPath(call),
      peer: peer?.spiffeId,
      principal: principal ? { tenant: principal.tenantId, subject: principal.subject } : undefined,
      policyReason: reason,
      ...(cause === undefined ? {} : { err: cause }),
    },
    "call denied",
  );
  // Internal calls are not audited in the store (the gateway's are); the SIEM hears of each denial.
  emitSecurityEvent({
    kind: "policy.denial",
    tenantId: principal?.tenantId ?? null,
    identity: principal
      ? `${principal.tenantId}/${principal.subject}`
      : (peer?.spiffeId ?? "unknown"),
    resource: methodPath(call),
    traceId: activeSpanContext()?.traceId ?? null,
    message: `policy denied ${methodPath(call)}: ${reason}`,
    details: { peer: peer?.spiffeId ?? null, reason },
  });
  return Promise.reject(new MeshError(Code.PermissionDenied, reason));
}
