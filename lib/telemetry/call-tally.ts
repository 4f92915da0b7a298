/**
 * RPC counts and latencies kept per method in plain numbers and handed to
 * prom-client when the registry is read (a scrape, or `metric.get()`).
 * prom-client hashes the label set of every `inc` and `observe` (sorting and
 * joining its keys; a label-bound child hashes again), which cost 2–3 µs per
 * update on every side of every hop. The series exported are the same:
 * `agentmesh_rpc_requests_total`, `agentmesh_rpc_errors_total` and
 * `agentmesh_rpc_duration_seconds`, with the same labels and buckets.
 *
 * @example
 * const tally = callTallies.of("server", method);
 * tally.record(Code.Ok, 0.0012);
 * await registry.metrics(); // the counts since the last read are added to the metrics here
 */
import type { DescMethod } from "@bufbuild/protobuf";
import type { Counter, Histogram } from "prom-client";
import { type Code, codeName } from "../errors/mesh-error.js";

type CallLabels = { side: string; service: string; method: string };
type CodeLabels = CallLabels & { code: string };

/** gRPC codes are 0–16. */
const codeCount = 17;

/** One method's calls on one side since the metrics were last read. */
export class MethodTally {
  readonly labels: CallLabels;
  /** Label sets with their code, made once per code seen. */
  readonly #withCode: (CodeLabels | undefined)[] = new Array(codeCount);
  readonly #requests = new Float64Array(codeCount);
  readonly #errors = new Float64Array(codeCount);
  readonly #buckets: Float64Array;
  readonly #bounds: readonly number[];
  #sum = 0;
  #count = 0;

  constructor(labels: CallLabels, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.#buckets = new Float64Array(bounds.length);
  }

  /** One finished call: its status code and how long it took. */
  record(code: Code, seconds: number): void {
    this.#requests[code] = (this.#requests[code] as number) + 1;
    if (code !== 0) this.#errors[code] = (this.#errors[code] as number) + 1;
    this.#sum += seconds;
    this.#count++;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= (bounds[i] as number)) {
        this.#buckets[i] = (this.#buckets[i] as number) + 1;
        return;
      }
    }
  }

  /** Adds the counts since the last flush to `counter` (requests, or errors) and clears them. */
  flushCounts(counter: Counter<keyof CodeLabels>, which: "requests" | "errors"): void {
    const counts = which === "requests" ? this.#requests : this.#errors;
    for (let code = 0; code < codeCount; code++) {
      const n = counts[code] as number;
      if (n === 0) continue;
      counts[code] = 0;
      counter.inc(this.#labelsWith(code), n);
    }
  }

  /** Adds the observations since the last flush to `histogram` and clears them. */
  flushDurations(histogram: Histogram<keyof CallLabels>): void {
    if (this.#count === 0) return;
    const entry = histogramEntry(histogram, this.labels);
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      const n = this.#buckets[i] as number;
      if (n === 0) continue;
      this.#buckets[i] = 0;
      entry.bucketValues[bounds[i] as number] = (entry.bucketValues[bounds[i] as number] ?? 0) + n;
    }
    entry.sum += this.#sum;
    entry.count += this.#count;
    this.#sum = 0;
    this.#count = 0;
  }

  #labelsWith(code: number): CodeLabels {
    let labels = this.#withCode[code];
    if (labels === undefined) {
      labels = { ...this.labels, code: codeName(code as Code) };
      this.#withCode[code] = labels;
    }
    return labels;
  }
}

/** What prom-client keeps per label set of a histogram (15.x), where its export reads it. */
interface HistogramEntry {
  labels: object;
  bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

/**
 * The histogram's entry for `labels`, made by `zero` (prom-client's own way to add a
 * label set, hashed once here) if the label set has none yet. Found by the labels'
 * values, so an entry made by a direct `observe` is added to, never reset.
 */
function histogramEntry(
  histogram: Histogram<keyof CallLabels>,
  labels: CallLabels,
): HistogramEntry {
  const find = () =>
    Object.values(
      (histogram as unknown as { hashMap: Record<string, HistogramEntry> }).hashMap,
    ).find((e) => {
      const l = e.labels as Partial<CallLabels>;
      return l.side === labels.side && l.service === labels.service && l.method === labels.method;
    });
  let entry = find();
  if (entry === undefined) {
    histogram.zero(labels);
    entry = find();
  }
  if (entry === undefined) throw new Error("prom-client: no histogram entry after zero()");
  return entry;
}

/** Every method's tally on both sides, for one set of metrics. */
export class CallTallies {
  readonly #bounds: readonly number[];
  /** By descriptor (the per-call lookup), and by path: two descriptors of one method share a tally. */
  readonly #bySide = {
    server: new WeakMap<DescMethod, MethodTally>(),
    client: new WeakMap<DescMethod, MethodTally>(),
  };
  readonly #byPath = new Map<string, MethodTally>();

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
  }

  /** The tally of `method` on `side`, made on first use. */
  of(side: "server" | "client", method: DescMethod): MethodTally {
    const tallies = this.#bySide[side];
    let tally = tallies.get(method);
    if (tally === undefined) {
      const key = `${side} /${method.parent.typeName}/${method.name}`;
      tally = this.#byPath.get(key);
      if (tally === undefined) {
        tally = new MethodTally(
          { side, service: method.parent.typeName, method: method.name },
          this.#bounds,
        );
        this.#byPath.set(key, tally);
      }
      tallies.set(method, tally);
    }
    return tally;
  }

  /** For the metrics' `collect`: hands every tally's counts to the registry's metrics. */
  flushCounts(counter: Counter<keyof CodeLabels>, which: "requests" | "errors"): void {
    for (const tally of this.#byPath.values()) tally.flushCounts(counter, which);
  }

  flushDurations(histogram: Histogram<keyof CallLabels>): void {
    for (const tally of this.#byPath.values()) tally.flushDurations(histogram);
  }
}
