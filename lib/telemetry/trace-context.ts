/**
 * W3C trace context (`traceparent`) over gRPC metadata, with
 * `@opentelemetry/api` spans. When an OpenTelemetry SDK is registered (for
 * example one exporting over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set),
 * its recording spans are used; without one, the mesh still mints span ids
 * itself so every call has a trace id for its logs and passes the trace on.
 *
 * The repository installs only `@opentelemetry/api`: an application that wants
 * export registers an SDK before creating servers; nothing here needs to change.
 *
 * @example
 * const sc = parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
 * formatTraceparent(sc!); // the same string
 */
import { randomFillSync } from "node:crypto";
import {
  type Context,
  context,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  trace,
} from "@opentelemetry/api";

/** Metadata keys (lowercase, as HTTP/2 sends them). */
export const traceparentKey = "traceparent";
export const tracestateKey = "tracestate";

// A ProxyTracer: it delegates to an SDK registered later, so caching it is safe.
let cachedTracer: ReturnType<typeof trace.getTracer> | undefined;
const tracer = () => {
  cachedTracer ??= trace.getTracer("agentmesh.rpc");
  return cachedTracer;
};

const hex = /^[0-9a-f]+$/;
const zeroTrace = "00000000000000000000000000000000";
const zeroSpan = "0000000000000000";

/** Parses a `traceparent` header; undefined when absent or malformed (then a new trace starts). */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (!value || value.length < 55 || value.length > 512) return undefined;
  const version = value.slice(0, 2);
  if (version === "ff" || value[2] !== "-" || value[35] !== "-" || value[52] !== "-")
    return undefined;
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  // Version 00 has exactly 55 characters; later versions may append fields after a dash.
  if (version === "00" ? value.length !== 55 : value.length > 55 && value[55] !== "-")
    return undefined;
  if (!hex.test(version) || !hex.test(traceId) || !hex.test(spanId) || !hex.test(flags))
    return undefined;
  if (traceId === zeroTrace || spanId === zeroSpan) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16) & 1, isRemote: true };
}

export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-0${sc.traceFlags & 1}`;
}

// Ids from a pooled random buffer: one syscall per 256 ids instead of one per id.
const pool = Buffer.alloc(8 * 512);
let poolOffset = pool.length;

function randomHex(bytes: 8 | 16): string {
  if (poolOffset + bytes > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const out = pool.toString("hex", poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return out;
}

export function newTraceId(): string {
  return randomHex(16);
}

export function newSpanId(): string {
  return randomHex(8);
}

/** A started span and the context to run its work in. */
export interface StartedSpan {
  span: Span;
  context: Context;
  spanContext: SpanContext;
}

/**
 * Starts a span for one RPC under `parent` (remote for servers, the caller's
 * for clients). Without an SDK the span is a non-recording wrapper around a
 * freshly minted span id in the parent's trace (or a new trace).
 */
export function startRpcSpan(
  name: string,
  kind: "server" | "client",
  parent: SpanContext | undefined,
): StartedSpan {
  if (!sdkRegistered()) {
    // No SDK: skip the no-op tracer and context objects entirely (hot path).
    const spanContext: SpanContext = {
      traceId: parent?.traceId ?? newTraceId(),
      spanId: newSpanId(),
      traceFlags: parent?.traceFlags ?? 0,
    };
    return { span: trace.wrapSpanContext(spanContext), context: ROOT_CONTEXT, spanContext };
  }
  const parentContext = parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
  let span = tracer().startSpan(
    name,
    {
      kind: kind === "server" ? SpanKind.SERVER : SpanKind.CLIENT,
      attributes: { "rpc.system": "grpc", "rpc.method": name },
    },
    parentContext,
  );
  let spanContext = span.spanContext();
  if (!span.isRecording()) {
    spanContext = {
      traceId: parent?.traceId ?? newTraceId(),
      spanId: newSpanId(),
      traceFlags: parent?.traceFlags ?? 0,
    };
    span = trace.wrapSpanContext(spanContext);
  }
  return { span, context: trace.setSpan(parentContext, span), spanContext };
}

// The API's no-op provider, which a ProxyTracerProvider returns until an SDK registers.
const noopProvider = new ProxyTracerProvider().getDelegate();

/** True once an OpenTelemetry SDK has registered a tracer provider. */
export function sdkRegistered(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== noopProvider;
}

/** The span context active in OpenTelemetry's context manager, if any (needs an SDK). */
export function activeSpanContext(): SpanContext | undefined {
  const sc = trace.getSpan(context.active())?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? sc : undefined;
}
