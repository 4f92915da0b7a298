/**
 * Queue depth, consumer lag and in-flight counts per capability, dead letters
 * per queue and whether the bus connection is up, as Prometheus gauges. They
 * are collected at scrape time from the bus (`stats()`, `deadLetterCounts()`),
 * so they cost nothing between scrapes and are never stale.
 *
 * @example
 * registerBusMetrics(bus); // on prom-client's default registry
 * // agentmesh_bus_queue_depth{capability="text.summarize"} 3
 */
import { register as defaultRegistry, Gauge, type Registry } from "prom-client";
import type { JobBus, QueueStats } from "./job-bus.js";

/** Per registry: every bus (for `agentmesh_bus_up`), and those whose queues it reports. */
const busesByRegistry = new WeakMap<Registry, { all: Set<JobBus>; queues: Set<JobBus> }>();

export interface BusMetricsOptions {
  /**
   * Also the queue and dead-letter gauges (they read stream and consumer state,
   * which a NATS identity other than the executor's may not). Default true.
   */
  queues?: boolean;
}

/** Exposes the bus's figures on `registry`; returns a function that removes them. */
export function registerBusMetrics(
  bus: JobBus,
  registry: Registry = defaultRegistry,
  options: BusMetricsOptions = {},
): () => void {
  let buses = busesByRegistry.get(registry);
  if (!buses) {
    buses = { all: new Set(), queues: new Set() };
    busesByRegistry.set(registry, buses);
    const { all, queues: live } = buses;
    // One collection per scrape feeds all three gauges.
    let pending: Promise<QueueStats[]> | undefined;
    const collect = () => {
      pending ??= Promise.all([...live].map((b) => b.stats().catch(() => []))).then((all) => {
        setImmediate(() => {
          pending = undefined;
        });
        return all.flat();
      });
      return pending;
    };
    const gauge = (name: string, help: string, pick: (s: QueueStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ["capability"],
        registers: [registry],
        async collect() {
          this.reset();
          for (const s of await collect()) this.set({ capability: s.capability }, pick(s));
        },
      });
    gauge("agentmesh_bus_queue_depth", "Jobs waiting or in flight per capability.", (s) => s.depth);
    gauge("agentmesh_bus_consumer_lag", "Jobs not yet delivered to any agent.", (s) => s.lag);
    gauge("agentmesh_bus_ack_pending", "Jobs delivered and not yet settled.", (s) => s.ackPending);
    new Gauge({
      name: "agentmesh_bus_up",
      help: "1 while this process's connection to the bus can publish, 0 while it is down.",
      registers: [registry],
      collect() {
        let up = 1;
        for (const b of all) {
          try {
            b.checkAvailable();
          } catch {
            up = 0;
          }
        }
        this.set(up);
      },
    });
    new Gauge({
      name: "agentmesh_bus_dead_letters",
      help: "Dead letters kept, by queue (a capability, or _results, _outcomes, _training).",
      labelNames: ["queue"],
      registers: [registry],
      async collect() {
        this.reset();
        const counts = await Promise.all(
          [...live].map((b) => b.deadLetterCounts().catch(() => new Map<string, number>())),
        );
        for (const m of counts) for (const [queue, n] of m) this.set({ queue }, n);
      },
    });
  }
  const { all, queues } = buses;
  all.add(bus);
  if (options.queues ?? true) queues.add(bus);
  return () => {
    all.delete(bus);
    queues.delete(bus);
  };
}
