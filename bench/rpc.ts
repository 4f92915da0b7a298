/**
 * `bench/rpc`: the cost of the mesh hop. In one run, the same 64-byte echo
 * over mutual TLS on loopback, measured two ways:
 *
 * - **bare**: grpc-js with `createSsl` credentials and a raw Buffer handler;
 * - **mesh**: `createServer`/`createClient` with every built-in interceptor
 *   (metrics, tracing, deadline, identity, authorization), watched
 *   certificates and protobuf encoding.
 *
 * Each is measured closed-loop (max throughput, `concurrency` callers) and
 * open-loop at a fixed rate (latency without coordinated omission); rounds
 * alternate bare/mesh so machine noise hits both. Client and server share
 * the process, as in the embedded mode. Target: mesh ≥ 70% of bare rps.
 *
 * Bare grpc-js runs with the options the mesh gives grpc-js (channelz off), so
 * the difference is the mesh's own work. The open-loop rounds alternate too
 * and record, beside the latency, the CPU per call, the event loop's delay and
 * the garbage collector's pauses (issue 23: mesh p99 ≤ 2× bare's at the same
 * rate), which is where a tail comes from.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import { createLogger } from "../lib/log/logger.js";
import { createChannel, createClient } from "../lib/rpc/client.js";
import { createServer } from "../lib/rpc/server.js";
import { allowNames, createTestPki, echoImpl, echoService } from "../lib/rpc/testing.js";
import { createMeshMetrics } from "../lib/telemetry/metrics.js";
import type { Benchmark } from "./benchmark.js";
import { type OpenLoopResult, runClosedLoop, runOpenLoop } from "./open-loop.js";

interface Target {
  call: () => Promise<unknown>;
  close: () => Promise<void>;
}

const payload = new Uint8Array(64).fill(7);

async function bare(dir: (name: string) => string): Promise<Target> {
  const read = (name: string, file: string) => readFileSync(join(dir(name), file));
  // channelz off, as the mesh runs grpc-js (lib/rpc/server.ts, client.ts).
  const server = new grpc.Server({ "grpc.enable_channelz": 0 });
  const id = (b: Buffer) => b;
  server.register(
    "/agentmesh.testing.EchoService/Echo",
    (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb(null, call.request),
    id,
    id,
    "unary",
  );
  const creds = grpc.ServerCredentials.createSsl(
    read("registry", "ca.crt"),
    [{ private_key: read("registry", "tls.key"), cert_chain: read("registry", "tls.crt") }],
    true,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  const client = new grpc.Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createSsl(
      read("executor", "ca.crt"),
      read("executor", "tls.key"),
      read("executor", "tls.crt"),
    ),
    { "grpc.ssl_target_name_override": "registry", "grpc.enable_channelz": 0 },
  );
  // The same bytes the mesh client sends: a BytesValue with 64 bytes.
  const body = Buffer.concat([Buffer.from([0x0a, payload.length]), Buffer.from(payload)]);
  return {
    call: () =>
      new Promise((resolve, reject) =>
        client.makeUnaryRequest(
          "/agentmesh.testing.EchoService/Echo",
          id,
          id,
          body,
          new grpc.Metadata(),
          { deadline: Date.now() + 30_000 },
          (err, res) => (err ? reject(err) : resolve(res)),
        ),
      ),
    close: async () => {
      client.close();
      server.forceShutdown();
    },
  };
}

async function mesh(pki: Awaited<ReturnType<typeof createTestPki>>): Promise<Target> {
  const metrics = createMeshMetrics();
  const logger = createLogger({ name: "bench", level: "warn" });
  const server = createServer({
    certs: await pki.watch("registry"),
    authorizer: allowNames(["executor"]),
    metrics,
    logger,
  });
  server.add(echoService(), echoImpl);
  await server.listen();
  const channel = createChannel({
    address: server.address,
    certs: await pki.watch("executor"),
    server: pki.id("registry"),
    metrics,
    logger,
  });
  const echo = createClient(echoService(), channel) as unknown as {
    echo(req: { value: Uint8Array }): Promise<unknown>;
  };
  return {
    call: () => echo.echo({ value: payload }),
    close: async () => {
      channel.close();
      await server.shutdown(100);
    },
  };
}

interface Figures {
  rps: number;
  errors: number;
  p50Us: number;
  p99Us: number;
  cpuUsPerCall: number;
}

async function closed(target: Target, concurrency: number, ms: number): Promise<Figures> {
  const cpu0 = process.cpuUsage();
  const r = await runClosedLoop(concurrency, ms, target.call);
  const cpu = process.cpuUsage(cpu0);
  return {
    rps: r.rate,
    errors: r.errors,
    p50Us: r.latency.p50Us,
    p99Us: r.latency.p99Us,
    cpuUsPerCall: Math.round((cpu.user + cpu.system) / Math.max(1, r.completed)),
  };
}

interface OpenFigures {
  achievedRate: number;
  errors: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  cpuUsPerCall: number;
  /** The event loop's delay while it ran (monitorEventLoopDelay, 1 ms resolution). */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  /** Garbage collections and their summed and longest pause. */
  gcCount: number;
  gcPauseMs: number;
  gcMaxPauseMs: number;
}

async function openLoop(target: Target, rate: number, ms: number): Promise<OpenFigures> {
  const pauses: number[] = [];
  const gc = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push(e.duration);
  });
  gc.observe({ entryTypes: ["gc"] });
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const cpu0 = process.cpuUsage();
  let r: OpenLoopResult;
  try {
    r = await runOpenLoop({ rate, durationMs: ms, call: target.call });
  } finally {
    delay.disable();
    gc.disconnect();
  }
  const cpu = process.cpuUsage(cpu0);
  const round1 = (x: number) => Math.round(x * 10) / 10;
  return {
    achievedRate: r.achievedRate,
    errors: r.errors,
    ...pick(r.latency),
    cpuUsPerCall: Math.round((cpu.user + cpu.system) / Math.max(1, r.completed)),
    loopDelayP99Ms: round1(delay.percentile(99) / 1e6),
    loopDelayMaxMs: round1(delay.max / 1e6),
    gcCount: pauses.length,
    gcPauseMs: round1(pauses.reduce((a, b) => a + b, 0)),
    gcMaxPauseMs: round1(Math.max(0, ...pauses)),
  };
}

function medianByP99(runs: OpenFigures[]): OpenFigures {
  const sorted = [...runs].sort((a, b) => a.p99Us - b.p99Us);
  return sorted[Math.floor((sorted.length - 1) / 2)] as OpenFigures;
}

function best(runs: Figures[]): Figures {
  return runs.reduce((a, b) => (b.rps > a.rps ? b : a));
}

export const rpc: Benchmark = {
  name: "rpc",
  description:
    "64-byte unary echo over mTLS: bare grpc-js vs the mesh adapter with all interceptors",
  async run({ smoke }) {
    const pki = await createTestPki(["registry", "executor"]);
    const targets = { bare: await bare(pki.path), mesh: await mesh(pki) };
    try {
      const ms = smoke ? 600 : 4000;
      const rounds = smoke ? 1 : 3;
      const concurrency = 32;
      // Warm up connections and JIT.
      for (const t of Object.values(targets))
        await runClosedLoop(concurrency, smoke ? 200 : 1000, t.call);
      const runs: { bare: Figures[]; mesh: Figures[] } = { bare: [], mesh: [] };
      for (let i = 0; i < rounds; i++) {
        runs.bare.push(await closed(targets.bare, concurrency, ms));
        runs.mesh.push(await closed(targets.mesh, concurrency, ms));
      }
      const bareBest = best(runs.bare);
      const meshBest = best(runs.mesh);
      // Latency at a rate both can sustain: half of the mesh's closed-loop throughput.
      const rate = Math.max(100, Math.floor(meshBest.rps / 2));
      const open: { bare: OpenFigures[]; mesh: OpenFigures[] } = { bare: [], mesh: [] };
      for (let i = 0; i < rounds; i++) {
        open.bare.push(await openLoop(targets.bare, rate, ms));
        open.mesh.push(await openLoop(targets.mesh, rate, ms));
      }
      const bareOpen = medianByP99(open.bare);
      const meshOpen = medianByP99(open.mesh);
      const ratio = Math.round((meshBest.rps / Math.max(1, bareBest.rps)) * 100) / 100;
      return {
        concurrency,
        payloadBytes: payload.length,
        closedLoop: { bare: bareBest, mesh: meshBest, rounds },
        openLoop: {
          rate,
          rounds,
          // The round with the median p99 of each side; every round's p99 beside it.
          bare: { ...bareOpen, p99UsByRound: open.bare.map((r) => r.p99Us) },
          mesh: { ...meshOpen, p99UsByRound: open.mesh.map((r) => r.p99Us) },
          p99RatioMeshToBare:
            Math.round((meshOpen.p99Us / Math.max(1, bareOpen.p99Us)) * 100) / 100,
          p99Target: "mesh p99 <= 2 x bare p99 at the same rate",
          meetsP99Target: meshOpen.p99Us <= 2 * bareOpen.p99Us,
        },
        ratio,
        meshCpuOverheadUsPerCall: meshBest.cpuUsPerCall - bareBest.cpuUsPerCall,
        target: "mesh rps >= 0.70 x bare rps",
        meetsTarget: ratio >= 0.7,
      };
    } finally {
      await targets.bare.close();
      await targets.mesh.close();
      await pki.cleanup();
    }
  },
};

function pick(l: { p50Us: number; p99Us: number; p999Us: number }) {
  return { p50Us: l.p50Us, p99Us: l.p99Us, p999Us: l.p999Us };
}
