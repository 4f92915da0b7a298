/**
 * The mesh's Prometheus metrics (prom-client). One `MeshMetrics` per process
 * (`meshMetrics()`), or a fresh one per test (`createMeshMetrics()`), so tests
 * can read their own counters without sharing the global registry.
 *
 * | metric | labels | what |
 * | --- | --- | --- |
 * | `agentmesh_rpc_requests_total` | side, service, method, code | finished calls |
 * | `agentmesh_rpc_errors_total` | side, service, method, code | calls that ended with a non-OK code |
 * | `agentmesh_rpc_duration_seconds` | side, service, method | call latency (streams: until the last message) |
 * | `agentmesh_rpc_denials_total` | service, method | calls the authorizer denied |
 * | `agentmesh_cert_expiry_timestamp_seconds` | name, spiffe_id | notAfter of the loaded certificate |
 * | `agentmesh_cert_reloads_total` | name, result (`ok`, `error`) | certificate file reloads |
 *
 * @example
 * const metrics = meshMetrics();
 * await serveMetrics({ port: 9464, registry: metrics.registry });
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { CallTallies } from "./call-tally.js";

export interface MeshMetrics {
  registry: Registry;
  rpcRequests: Counter<"side" | "service" | "method" | "code">;
  rpcErrors: Counter<"side" | "service" | "method" | "code">;
  rpcDuration: Histogram<"side" | "service" | "method">;
  rpcDenials: Counter<"service" | "method">;
  certExpiry: Gauge<"name" | "spiffe_id">;
  certReloads: Counter<"name" | "result">;
  /**
   * Where the RPC interceptors count calls (`calls.of(side, method).record(code, seconds)`):
   * handed to `rpcRequests`, `rpcErrors` and `rpcDuration` when the registry is read.
   */
  calls: CallTallies;
}

export interface CreateMeshMetricsOptions {
  /** Registry to register in; default a new one. */
  registry?: Registry;
  /** Also collect Node process metrics (event loop lag, heap, GC); default false. */
  processMetrics?: boolean;
}

/** Latency buckets from 100 µs to 10 s: internal hops are sub-millisecond. */
const latencyBuckets = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

/**
 * How often the event loop's delay is sampled for `nodejs_eventloop_lag_*`. prom-client's
 * default, 10 ms, is a timer that wakes every process 100 times a second: most of an idle
 * component's CPU (planner idle 5 → 2 ms/s with 100 ms). Scraped every 15–30 s, 100 ms
 * still gives a few hundred samples per scrape.
 */
const loopLagSampleMs = 100;

export function createMeshMetrics(options: CreateMeshMetricsOptions = {}): MeshMetrics {
  const registry = options.registry ?? new Registry();
  if (options.processMetrics) {
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: loopLagSampleMs });
  }
  const registers = [registry];
  const calls = new CallTallies(latencyBuckets);
  return {
    registry,
    calls,
    rpcRequests: new Counter({
      name: "agentmesh_rpc_requests_total",
      help: "RPCs finished, by side (server/client), method and status code.",
      labelNames: ["side", "service", "method", "code"],
      registers,
      collect() {
        calls.flushCounts(this, "requests");
      },
    }),
    rpcErrors: new Counter({
      name: "agentmesh_rpc_errors_total",
      help: "RPCs that ended with a non-OK status code.",
      labelNames: ["side", "service", "method", "code"],
      registers,
      collect() {
        calls.flushCounts(this, "errors");
      },
    }),
    rpcDuration: new Histogram({
      name: "agentmesh_rpc_duration_seconds",
      help: "RPC latency in seconds; for streams, until the last message.",
      labelNames: ["side", "service", "method"],
      buckets: latencyBuckets,
      registers,
      collect() {
        calls.flushDurations(this);
      },
    }),
    rpcDenials: new Counter({
      name: "agentmesh_rpc_denials_total",
      help: "RPCs denied by the authorizer (policy).",
      labelNames: ["service", "method"],
      registers,
    }),
    certExpiry: new Gauge({
      name: "agentmesh_cert_expiry_timestamp_seconds",
      help: "notAfter of the currently loaded certificate, as a Unix timestamp.",
      labelNames: ["name", "spiffe_id"],
      registers,
    }),
    certReloads: new Counter({
      name: "agentmesh_cert_reloads_total",
      help: "Certificate file reloads by result; errors keep the last good pair.",
      labelNames: ["name", "result"],
      registers,
    }),
  };
}

let processMetrics: MeshMetrics | undefined;

/** The process-wide metrics (created on first use, with Node process metrics). */
export function meshMetrics(): MeshMetrics {
  processMetrics ??= createMeshMetrics({ processMetrics: true });
  return processMetrics;
}
