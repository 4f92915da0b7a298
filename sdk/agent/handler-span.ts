/**
 * The span a job's handler runs in: a CONSUMER span named `handle <capability>`,
 * the child of the job's `traceparent` (the goal's trace, set by the
 * executor), active while the job is handled, so the handler's own calls
 * and the result (published with the active context's `traceparent`) join
 * the goal's trace. Nothing is created when no OpenTelemetry SDK is
 * registered (`startTracing` does it when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
 *
 * @example
 * await inHandlerSpan("text.upper", delivery.traceparent, { "agentmesh.goal_id": id }, () => run());
 */
import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { parseTraceparent, sdkRegistered } from "../../lib/telemetry/trace-context.js";

let tracer: ReturnType<typeof trace.getTracer> | undefined;

/** Whether a handler span would be made (an OpenTelemetry SDK is registered). */
export function handlerSpanOn(): boolean {
  return sdkRegistered();
}

/** Runs `fn` in the handler span of a job; the span ends (errored if `fn` throws) when it settles. */
export async function inHandlerSpan<T>(
  capability: string,
  traceparent: string | undefined,
  attributes: Record<string, string | number>,
  fn: () => Promise<T>,
): Promise<T> {
  if (!sdkRegistered()) return fn();
  tracer ??= trace.getTracer("agentmesh.agent");
  const parent = parseTraceparent(traceparent);
  const parentContext = parent ? trace.setSpanContext(context.active(), parent) : context.active();
  const span = tracer.startSpan(
    `handle ${capability}`,
    { kind: SpanKind.CONSUMER, attributes: { "agentmesh.capability": capability, ...attributes } },
    parentContext,
  );
  try {
    return await context.with(trace.setSpan(parentContext, span), fn);
  } catch (err) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/** Marks the active handler span failed (a job that failed without throwing). */
export function markHandlerFailed(message: string): void {
  trace.getSpan(context.active())?.setStatus({ code: SpanStatusCode.ERROR, message });
}
