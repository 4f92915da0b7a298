/**
 * The client's built-in interceptors, outermost first:
 *
 * 1. `clientMetrics`   count, latency and errors per method (side="client")
 * 2. `clientTracing`   a client span under the active one (or the incoming
 *                      call's), sent as W3C `traceparent`
 * 3. `clientDeadline`  the earliest of the call's own and the inherited deadline
 * 4. `clientPrincipal` the delegated principal as `x-agentmesh-principal-bin`
 */
import { toBinary } from "@bufbuild/protobuf";
import { type Span, SpanStatusCode } from "@opentelemetry/api";
import { PrincipalSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { MeshMetrics } from "../telemetry/metrics.js";
import {
  activeSpanContext,
  formatTraceparent,
  startRpcSpan,
  traceparentKey,
} from "../telemetry/trace-context.js";
import { principalMetadataKey } from "./authorizer.js";
import { currentScope } from "./call-scope.js";
import { principalKey, spanKey } from "./context-keys.js";
import { type Interceptor, isStreamingResponse } from "./interceptor.js";
import { methodPath, observeCall } from "./server-interceptors.js";
import { observeStream } from "./stream-util.js";

/** 1. Request count, latency histogram and errors per method. */
export function clientMetrics(metrics: MeshMetrics): Interceptor {
  return (next) => (call) => observeCall(metrics, "client", call, next(call));
}

/** 2. Starts a client span and puts its context on the wire. */
export function clientTracing(): Interceptor {
  return (next) => (call) => {
    const path = methodPath(call);
    const parent = activeSpanContext() ?? currentScope()?.spanContext;
    const started = startRpcSpan(path, "client", parent);
    call.values.set(spanKey, started.spanContext);
    call.metadata.set(traceparentKey, formatTraceparent(started.spanContext));
    // A span nobody records has nothing to end: no promise step per call for it.
    if (started.context === undefined) return next(call);
    return next(call).then(
      (res) => {
        if (!isStreamingResponse(call.method)) {
          started.span.end();
          return res;
        }
        return observeStream(res as AsyncIterable<never>, (err) => endSpan(started.span, err));
      },
      (err: unknown) => {
        endSpan(started.span, err);
        throw err;
      },
    );
  };
}

function endSpan(span: Span, err: unknown): void {
  if (err !== undefined)
    span.setStatus({ code: SpanStatusCode.ERROR, message: MeshError.from(err).codeName });
  span.end();
}

/** 3. Deadline propagation: never later than the incoming call's deadline. */
export function clientDeadline(): Interceptor {
  return (next) => (call) => {
    const inherited = currentScope()?.deadline;
    if (inherited !== undefined && (call.deadline === undefined || inherited < call.deadline)) {
      call.deadline = inherited;
    }
    if (call.deadline !== undefined && call.deadline <= Date.now()) {
      return Promise.reject(
        new MeshError(Code.DeadlineExceeded, "deadline exceeded before the call was sent"),
      );
    }
    return next(call);
  };
}

/** 4. Sends the principal the caller acts for; the server's policy decides whether to trust it. */
export function clientPrincipal(): Interceptor {
  // A principal is a value (never changed once made) and the gateway reuses one per
  // credential, so its encoding is kept with it rather than redone on every call.
  const encoded = new WeakMap<object, Buffer>();
  return (next) => (call) => {
    const principal = call.values.get(principalKey);
    if (principal) {
      let header = encoded.get(principal);
      if (header === undefined) {
        const bytes = toBinary(PrincipalSchema, principal);
        header = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        encoded.set(principal, header);
      }
      call.metadata.set(principalMetadataKey, header);
    }
    return next(call);
  };
}
