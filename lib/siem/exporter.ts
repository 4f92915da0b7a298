/**
 * At-least-once delivery of security events to one sink, off the request
 * path. `emit` only appends to a bounded in-memory queue and returns; one
 * loop sends batches and, when the sink fails, keeps the batch and retries
 * it with exponential backoff (a batch leaves the queue only once the sink
 * took it, so a receiver outage loses nothing that fits in the queue).
 *
 * Backpressure: when the queue is full, `emit` drops the new event and
 * counts it in `agentmesh_siem_events_dropped_total` — a slow SIEM must
 * never block or slow an RPC. We chose dropping over spilling to disk: the
 * audit log in PostgreSQL already keeps the durable record of denials and
 * admin actions, so the SIEM stream is a copy, and a spill file would be one
 * more disk that can fill.
 *
 * @example
 * const exporter = createSiemExporter({ sink: fileSink("/var/log/agentmesh/siem.jsonl") });
 * exporter.emit({ kind: "auth.failure", identity: "acme/bob", tenantId: "acme", message: "bad API key" });
 * await exporter.close(); // sends what is queued (bounded by closeTimeoutMs)
 */
import { Counter, type Registry } from "prom-client";
import { toOcsf } from "./ocsf.js";
import type { SecurityEvent } from "./security-event.js";
import type { SiemSink } from "./sink.js";

export interface SiemExporterOptions {
  sink: SiemSink;
  /** Events held while the sink is slow or down; default 10000. */
  capacity?: number;
  /** Events per send; default 100. */
  batchSize?: number;
  /** First retry delay; default 100 ms, doubling up to `maxBackoffMs`. */
  minBackoffMs?: number;
  /** Default 5000 ms. */
  maxBackoffMs?: number;
  /** Where the counters are registered; none when unset. */
  registry?: Registry;
  /** Told about the first failed send of each outage. */
  onError?: (err: unknown) => void;
}

export interface SiemExporter {
  /** Queues one event; never blocks, never throws. */
  emit(event: SecurityEvent): void;
  /** Resolves when the queue is empty (or `timeoutMs` passed: then false). */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Events queued, sent, dropped so far. */
  stats(): { queued: number; sent: number; dropped: number; failures: number };
  /** Flushes (at most `timeoutMs`, default 5000) and closes the sink. */
  close(timeoutMs?: number): Promise<void>;
}

function counter(registry: Registry | undefined, name: string, help: string) {
  if (!registry) return undefined;
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<"sink">;
  return new Counter({ name, help, labelNames: ["sink"], registers: [registry] });
}

export function createSiemExporter(options: SiemExporterOptions): SiemExporter {
  const { sink } = options;
  const capacity = options.capacity ?? 10_000;
  const batchSize = options.batchSize ?? 100;
  const minBackoff = options.minBackoffMs ?? 100;
  const maxBackoff = options.maxBackoffMs ?? 5000;
  const droppedTotal = counter(
    options.registry,
    "agentmesh_siem_events_dropped_total",
    "Security events dropped because the SIEM queue was full.",
  );
  const sentTotal = counter(
    options.registry,
    "agentmesh_siem_events_sent_total",
    "Security events the SIEM sink took.",
  );
  const queue: Record<string, unknown>[] = [];
  let sent = 0;
  let dropped = 0;
  let failures = 0;
  let running = false;
  let closed = false;
  let wake: (() => void) | undefined;
  const idle: (() => void)[] = [];

  async function loop() {
    running = true;
    let backoff = minBackoff;
    while (queue.length > 0 && !closed) {
      const batch = queue.slice(0, batchSize);
      try {
        await sink.send(batch);
        queue.splice(0, batch.length);
        sent += batch.length;
        sentTotal?.inc({ sink: sink.name }, batch.length);
        backoff = minBackoff;
      } catch (err) {
        failures++;
        // Told once per outage, not once per retry.
        if (backoff === minBackoff) options.onError?.(err);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, backoff);
          timer.unref();
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        backoff = Math.min(backoff * 2, maxBackoff);
      }
    }
    running = false;
    if (queue.length === 0) for (const done of idle.splice(0)) done();
  }

  function kick() {
    if (!running && !closed) void loop();
  }

  return {
    emit(event) {
      if (closed) return;
      if (queue.length >= capacity) {
        dropped++;
        droppedTotal?.inc({ sink: sink.name });
        return;
      }
      try {
        queue.push(toOcsf(event));
      } catch {
        dropped++; // an event that cannot be serialized must not break the caller
        droppedTotal?.inc({ sink: sink.name });
        return;
      }
      kick();
    },
    flush(timeoutMs = 5000) {
      if (queue.length === 0) return Promise.resolve(true);
      wake?.(); // retry now rather than after the backoff
      kick();
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        idle.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    },
    stats: () => ({ queued: queue.length, sent, dropped, failures }),
    async close(timeoutMs = 5000) {
      await this.flush(timeoutMs);
      closed = true;
      wake?.();
      await sink.close();
    },
  };
}
