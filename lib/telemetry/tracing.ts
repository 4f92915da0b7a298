/**
 * Span export over OTLP (HTTP/JSON), switched on by the standard environment:
 * nothing is registered unless `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's
 * base URL; spans go to `<endpoint>/v1/traces`) or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) is set. Then a tracer
 * provider with a batching OTLP exporter, an AsyncLocalStorage context manager
 * (the RPC server runs handlers in their span's context) and the W3C trace
 * context propagator are registered globally; `lib/rpc`'s spans start
 * recording and are exported with `service.name`.
 *
 * Call it once per process, before creating servers and clients, and await
 * `shutdown()` when the process stops (it flushes the spans still queued).
 *
 * @example
 * const tracing = await startTracing({ serviceName: "agentmesh-registry" });
 * // ... serve ...
 * await tracing?.shutdown();
 */
import { context, propagation, trace } from "@opentelemetry/api";

export interface TracingOptions {
  /** `service.name` of every exported span, e.g. "agentmesh-registry". */
  serviceName: string;
  /** Where the `OTEL_*` variables are read from. Default `process.env`. */
  env?: NodeJS.ProcessEnv;
}

export interface Tracing {
  /** Flushes queued spans, stops exporting and unregisters the globals. */
  shutdown(): Promise<void>;
}

/** The traces URL from the environment, or undefined when export is off. */
export function otlpTracesUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return undefined;
  return `${base.replace(/\/+$/, "")}/v1/traces`;
}

/**
 * Starts OTLP span export when the environment asks for it; undefined (and
 * nothing registered) otherwise. The SDK is imported only then: it is a fifth
 * of a second of start-up that a process without a collector need not pay.
 */
export async function startTracing({
  serviceName,
  env = process.env,
}: TracingOptions): Promise<Tracing | undefined> {
  const url = otlpTracesUrl(env);
  if (!url) return undefined;
  const [
    { AsyncLocalStorageContextManager },
    { W3CTraceContextPropagator },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    { BasicTracerProvider, BatchSpanProcessor },
    { ATTR_SERVICE_NAME },
  ] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/core"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/semantic-conventions"),
  ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }),
    // The URL is passed explicitly so `env` (not only process.env) decides; the
    // exporter still reads headers, timeout and compression from process.env.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }))],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  let done: Promise<void> | undefined;
  return {
    shutdown() {
      done ??= provider.shutdown().finally(() => {
        trace.disable();
        propagation.disable();
        context.disable();
      });
      return done;
    },
  };
}
