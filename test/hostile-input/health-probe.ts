/**
 * A `/healthz` probe from another thread: polls a URL every 25 ms with a 1 s
 * timeout and records the slowest answer. When no URL is given it serves
 * `/healthz` from this process's own event loop first, so a handler that
 * blocks the loop (a synchronous regex, a huge allocation) shows up as a slow
 * or missing answer, exactly as a load balancer would see it.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Worker } from "node:worker_threads";

export interface ProbeReport {
  /** Polls answered. */
  answered: number;
  /** Polls that failed or took longer than 1 s. */
  failed: number;
  /** Slowest answer, in ms. */
  maxMs: number;
  /** The three slowest answers: when (ms since the start) and how long. */
  slowest: { atMs: number; ms: number }[];
}

export interface HealthProbe {
  url: string;
  /** The report so far. */
  report(): Promise<ProbeReport>;
  stop(): Promise<ProbeReport>;
}

const pollerSource = `
const { parentPort, workerData } = require("node:worker_threads");
const report = { answered: 0, failed: 0, maxMs: 0, slowest: [] };
const t0 = Date.now();
let stopped = false;
parentPort.on("message", (m) => {
  if (m === "stop") stopped = true;
  parentPort.postMessage(report);
});
(async () => {
  // The first requests load and compile the HTTP client in this thread (and the handler in
  // the server): not a measure of the host.
  for (let i = 0; i < 20; i++) {
    await fetch(workerData.url).then((r) => r.arrayBuffer()).catch(() => undefined);
  }
  parentPort.postMessage("warm");
  while (!stopped) {
    const start = performance.now();
    try {
      const res = await fetch(workerData.url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) report.answered++;
      else report.failed++;
    } catch {
      report.failed++;
    }
    const ms = performance.now() - start;
    report.maxMs = Math.max(report.maxMs, ms);
    report.slowest.push({ atMs: Date.now() - t0, ms: Math.round(ms) });
    report.slowest = report.slowest.sort((a, b) => b.ms - a.ms).slice(0, 3);
    await new Promise((r) => setTimeout(r, 25));
  }
})();
`;

export async function startHealthProbe(url?: string): Promise<HealthProbe> {
  let server: Server | undefined;
  if (!url) {
    server = createServer((_req, res) => res.end("ok"));
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
  }
  const worker = new Worker(pollerSource, { eval: true, workerData: { url } });
  // Measuring starts once the poller is warm.
  await new Promise((resolve) => worker.once("message", resolve));
  const ask = (message: string) =>
    new Promise<ProbeReport>((resolve) => {
      worker.once("message", resolve);
      worker.postMessage(message);
    });
  let stopped: Promise<ProbeReport> | undefined;
  return {
    url,
    report: () => stopped ?? ask("report"),
    stop() {
      stopped ??= (async () => {
        const report = await ask("stop");
        await worker.terminate();
        await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
        return report;
      })();
      return stopped;
    },
  };
}
