/**
 * The load generator of `bench/gateway`, on its own thread: a worker with its
 * own event loop (and, on a multi-core machine, its own core), so the server
 * under test does not pay for the client's encoding, scheduling and
 * bookkeeping the way it does when both share one loop. Like h2load, it does
 * not decode what it gets back beyond the top-level fields (the response is
 * read as an `Empty` with unknown fields), so the client's cost stays small
 * beside the servers'.
 *
 * @example
 * const load = await startLoadWorker();
 * const r = await load.run({ kind: "open", baseUrl, apiKey, rate: 2000, durationMs: 5000 });
 * await load.close();
 */
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type ListPlaybooksRequestSchema, PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { type OpenLoopResult, runClosedLoop, runOpenLoop } from "./open-loop.js";

/** One phase of load: PlannerService/ListPlaybooks against `baseUrl`. */
export type LoadPhase = { baseUrl: string; apiKey?: string } & (
  | { kind: "closed"; concurrency: number; durationMs: number }
  | { kind: "open"; rate: number; durationMs: number }
);

export type ClosedLoopResult = Awaited<ReturnType<typeof runClosedLoop>>;

export interface LoadWorker {
  run(phase: LoadPhase & { kind: "open" }): Promise<OpenLoopResult>;
  run(phase: LoadPhase & { kind: "closed" }): Promise<ClosedLoopResult>;
  close(): Promise<void>;
}

/** Starts the worker (this file, run through tsx like the rest of the sources). */
export async function startLoadWorker(): Promise<LoadWorker> {
  const tsx = import.meta.resolve("tsx/esm/api");
  const self = import.meta.url;
  const worker = new Worker(
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); })`,
    { eval: true },
  );
  let failure: Error | undefined;
  const waiting: { resolve(v: unknown): void; reject(e: Error): void }[] = [];
  worker.on("message", (m: { result?: unknown; error?: string }) => {
    const w = waiting.shift();
    if (m.error !== undefined) w?.reject(new Error(m.error));
    else w?.resolve(m.result);
  });
  worker.on("error", (err) => {
    failure = err;
    for (const w of waiting.splice(0)) w.reject(err);
  });
  return {
    run(phase: LoadPhase) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        worker.postMessage(phase);
      });
    },
    async close() {
      await worker.terminate();
    },
  } as LoadWorker;
}

// Inside the worker: one transport per target (one HTTP/2 connection, as a real SDK client has).
if (!isMainThread && parentPort) {
  const port = parentPort;
  const listPlaybooks: DescMethodUnary<typeof ListPlaybooksRequestSchema, typeof EmptySchema> = {
    ...PlannerService.method.listPlaybooks,
    output: EmptySchema,
  };
  // Beyond this many calls in flight on one connection a server is lost anyway (and node's
  // HTTP/2 session memory limit starts refusing streams); later calls count as dropped.
  const maxInFlight = 1000;
  const transports = new Map<string, Transport>();
  const transportFor = (baseUrl: string, apiKey: string | undefined) => {
    const key = `${baseUrl} ${apiKey ?? ""}`;
    let t = transports.get(key);
    if (t === undefined) {
      t = createConnectTransport({
        baseUrl,
        httpVersion: "2",
        useBinaryFormat: true,
        interceptors: apiKey
          ? [
              (next) => (req) => {
                req.header.set("Authorization", `Bearer ${apiKey}`);
                return next(req);
              },
            ]
          : [],
      });
      transports.set(key, t);
    }
    return t;
  };
  port.on("message", (phase: LoadPhase) => {
    const t = transportFor(phase.baseUrl, phase.apiKey);
    const call = () => t.unary(listPlaybooks, undefined, undefined, undefined, {});
    const done =
      phase.kind === "open"
        ? runOpenLoop({ rate: phase.rate, durationMs: phase.durationMs, call, maxInFlight })
        : runClosedLoop(phase.concurrency, phase.durationMs, call);
    done.then(
      (result) => port.postMessage({ result }),
      (err: unknown) => port.postMessage({ error: String(err) }),
    );
  });
}
