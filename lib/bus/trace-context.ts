/** W3C trace context for bus headers, taken from the active OpenTelemetry context. */
import { context, propagation } from "@opentelemetry/api";

/** The active context's `traceparent`, or undefined when no tracer is installed. */
export function currentTraceparent(): string | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent;
}
