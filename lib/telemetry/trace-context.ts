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

const zeroTrace = "00000000000000000000000000000000";
const zeroSpan = "0000000000000000";

/** Parses a `traceparent` header; undefined when absent or malformed (then a new trace starts). */
export function parseTraceparent(value: string | undefined): SpanContext | undefined {
  if (!value || value.length < 55 || value.length > 512) return undefined;
  // One pass over the fixed-width part (every call's server parses one): lowercase hex
  // with dashes at 2, 35 and 52.
  for (let i = 0; i < 55; i++) {
    const c = value.charCodeAt(i);
    if (i === 2 || i === 35 || i === 52) {
      if (c !== 45) return undefined; // "-"
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) {
      return undefined; // not 0-9a-f
    }
  }
  const version = value.slice(0, 2);
  if (version === "ff") return undefined;
  // Version 00 has exactly 55 characters; later versions may append fields after a dash.
  if (version === "00" ? value.length !== 55 : value.length > 55 && value[55] !== "-")
    return undefined;
  const traceId = value.slice(3, 35);
  const spanId = value.slice(36, 52);
  if (traceId === zeroTrace || spanId === zeroSpan) return undefined;
  const flags = hexDigit(value.charCodeAt(54));
  return { traceId, spanId, traceFlags: flags & 1, isRemote: true };
}

function hexDigit(c: number): number {
  return c <= 57 ? c - 48 : c - 87;
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
  /** The context to run the span's work in; undefined when no SDK records spans (nothing to carry). */
  context: Context | undefined;
  spanContext: SpanContext;
}

/**
 * A span context minted here, when no SDK records spans. Its span id is drawn
 * when first read: a server span's is read only by a log line or a handler
 * that keeps it (SubmitGoal's trace span), and most calls do neither.
 */
class MintedSpanContext implements SpanContext {
  #spanId: string | undefined;
  constructor(
    readonly traceId: string,
    readonly traceFlags: number,
  ) {}
  get spanId(): string {
    this.#spanId ??= newSpanId();
    return this.#spanId;
  }
  /** Plain data when serialised (the id is a getter). */
  toJSON(): SpanContext {
    return { traceId: this.traceId, spanId: this.spanId, traceFlags: this.traceFlags };
  }
}

/** What a span is when no SDK records it: ending it or setting its status does nothing. */
const unrecordedSpan: Span = trace.wrapSpanContext({
  traceId: zeroTrace,
  spanId: zeroSpan,
  traceFlags: 0,
});

/**
 * Starts a span for one RPC under `parent` (remote for servers, the caller's
 * for clients). Without an SDK the span does nothing and its context is a
 * span id minted (when first read) in the parent's trace, or a new trace.
 */
export function startRpcSpan(
  name: string,
  kind: "server" | "client",
  parent: SpanContext | undefined,
): StartedSpan {
  if (!sdkRegistered()) {
    // No SDK: no tracer, span or context objects per call (hot path).
    return {
      span: unrecordedSpan,
      context: undefined,
      spanContext: new MintedSpanContext(parent?.traceId ?? newTraceId(), parent?.traceFlags ?? 0),
    };
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
    spanContext = new MintedSpanContext(parent?.traceId ?? newTraceId(), parent?.traceFlags ?? 0);
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
