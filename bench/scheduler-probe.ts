/**
 * How late a sleeping thread wakes up while a benchmark runs: a worker thread
 * sleeps 1 ms at a time (`Atomics.wait`, no event loop involved) and records
 * how much later than asked it woke. When the processes under test share a
 * few cores, that lateness is the scheduler's share of any latency measured
 * meanwhile: a tail no code of theirs can remove. It costs ~1,000 wake-ups a
 * second, about 1–2 % of one core.
 *
 * @example
 * const probe = startSchedulerProbe();
 * await runOpenLoop({ ... });
 * const lateness = await probe.stop(); // { p99Us, maxUs, over2Ms, ... }
 */
import { Worker } from "node:worker_threads";
import { LatencyHistogram, type LatencySummary } from "./histogram.js";

/** Runs in the worker (CommonJS, evaluated): sleep, measure, until told to stop. */
const probeSource = `
const { workerData, parentPort } = require("node:worker_threads");
const stop = new Int32Array(workerData.stop);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const lateUs = [];
while (Atomics.load(stop, 0) === 0) {
  const t0 = process.hrtime.bigint();
  Atomics.wait(sleeper, 0, 0, workerData.sleepMs);
  lateUs.push(Number(process.hrtime.bigint() - t0) / 1000 - workerData.sleepMs * 1000);
}
parentPort.postMessage(lateUs);
`;

export interface SchedulerLateness extends LatencySummary {
  /** Wake-ups more than 2 ms late. */
  over2Ms: number;
}

export function startSchedulerProbe(sleepMs = 1): { stop(): Promise<SchedulerLateness> } {
  const stop = new SharedArrayBuffer(4);
  const worker = new Worker(probeSource, { eval: true, workerData: { stop, sleepMs } });
  const samples = new Promise<number[]>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  return {
    async stop() {
      Atomics.store(new Int32Array(stop), 0, 1);
      const lateUs = await samples;
      await worker.terminate();
      const histogram = new LatencyHistogram();
      for (const us of lateUs) histogram.recordUs(us);
      return { ...histogram.summary(), over2Ms: lateUs.filter((us) => us > 2_000).length };
    },
  };
}
