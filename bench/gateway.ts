/**
 * The gateway's cost: in one run, a bare connect-node server answering
 * `PlannerService/ListPlaybooks` itself (baseline) vs the same call through
 * the gateway — API key, tenant limits, policy at the gateway, mTLS gRPC to
 * the real planner (`agentmesh serve planner`, its own process, on a private
 * PostgreSQL schema) with the policy checked again there. The client speaks
 * Connect (binary) over HTTP/2 to both, from a worker thread, so the gateway
 * (and the bare server) own this process's event loop as in production. Each
 * side gets its maximum rate (closed loop) and then fixed rates from an
 * open-loop generator, whose latency counts from each call's intended start
 * (no coordinated omission). Targets (issue 9): ≥ 2,000 rps at p99 ≤ 10 ms
 * through the gateway, and ≥ 40% of the bare echo's maximum rate.
 */
import { createServer, type ServerHttp2Session } from "node:http2";
import { loadavg } from "node:os";
import { create, fromBinary, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { defaultCompressMinBytes, startGateway } from "../gateway/start-gateway.js";
import { ListPlaybooksResponseSchema, PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { createLogger } from "../lib/log/logger.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";
import { startTestMesh } from "../lib/testing/mesh.js";
import { spawnComponent } from "../lib/testing/processes.js";
import type { Benchmark } from "./benchmark.js";
import { startLoadWorker } from "./gateway-load.js";
import { cpuSecondsOf } from "./process-cpu.js";

const cpuUs = (processOrThread: number | string) => cpuSecondsOf(processOrThread) * 1e6;

export const gateway: Benchmark = {
  name: "gateway",
  description:
    "unary call through the gateway (auth, limits, policy at both ends, mTLS hop to the real planner process) vs a bare connect-node server: max rate and open-loop latency",
  async run({ smoke }) {
    const mesh = await startTestMesh({
      databaseUrl: process.env.DATABASE_URL || defaultDatabaseUrl,
      natsUrl: process.env.NATS_URL || defaultNatsUrl,
      components: [],
    });
    const planner = await spawnComponent("planner", mesh.childEnv()).catch(async (err) => {
      await mesh.stop();
      throw err;
    });
    const { store } = mesh.runtime;
    await store.tenants.create({ id: "bench", displayName: "bench", rateLimitPerSecond: 1e6 });
    const k = newApiKey();
    await store.tenant("bench").apiKeys.create({
      keyId: k.keyId,
      secretHash: k.secretHash,
      name: "bench",
      roles: ["goals.read"],
    });
    const gw = await startGateway({
      store,
      authorizer: mesh.runtime.authorizer,
      certs: await mesh.runtime.certs("gateway"),
      upstreams: {
        executor: mesh.runtime.endpoint("executor").address,
        registry: mesh.runtime.endpoint("registry").address,
        learning: mesh.runtime.endpoint("learning").address,
        planner: planner.address,
      },
      port: 0,
      dashboard: false,
      log: createLogger({ name: "gateway", level: "warn" }),
    });
    const load = await startLoadWorker();
    const viaGateway = { baseUrl: gw.url, apiKey: k.secret };
    // The baseline: the same method answered by connect-node itself, with what the planner
    // answers (through the gateway as JSON, which also checks the decoding path).
    const listed = await (async () => {
      const r = await fetch(`${gw.url}/agentmesh.v1.PlannerService/ListPlaybooks`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${k.secret}` },
        body: "{}",
      });
      if (!r.ok)
        throw new Error(`ListPlaybooks through the gateway: ${r.status} ${await r.text()}`);
      return fromJson(ListPlaybooksResponseSchema, (await r.json()) as JsonValue);
    })();
    // Answered like the planner answers it (encoded once, see its listPlaybooks), with the
    // gateway's compression threshold, so the two differ by the gateway's work alone.
    const answer = Object.assign(create(ListPlaybooksResponseSchema), {
      $unknown: fromBinary(EmptySchema, toBinary(ListPlaybooksResponseSchema, listed)).$unknown,
    });
    const bare = createServer(
      connectNodeAdapter({
        compressMinBytes: defaultCompressMinBytes,
        routes: (r) => r.rpc(PlannerService.method.listPlaybooks, () => answer),
      }),
    );
    const sessions = new Set<ServerHttp2Session>();
    bare.on("session", (session) => sessions.add(session));
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
    const address = bare.address();
    const direct = {
      baseUrl: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    };
    const loadBefore = loadavg().map((l) => Math.round(l * 100) / 100);
    try {
      // Warm up JITs, connections and caches.
      await load.run({
        kind: "closed",
        concurrency: 16,
        durationMs: smoke ? 300 : 2000,
        ...direct,
      });
      await load.run({
        kind: "closed",
        concurrency: 16,
        durationMs: smoke ? 300 : 2000,
        ...viaGateway,
      });
      const maxMs = smoke ? 1000 : 5000;
      // The main thread only: the load worker is another thread of this process.
      const mainThread = `/proc/${process.pid}/task/${process.pid}/stat`;
      const plannerProcess = `/proc/${planner.process.pid}/stat`;
      // CPU per call of this process's main thread (the gateway, or the bare server) and of the planner.
      const cpuPerCall = async <R extends { completed: number }>(run: () => Promise<R>) => {
        const before = [cpuUs(mainThread), cpuUs(plannerProcess)];
        const r = await run();
        const n = Math.max(1, r.completed);
        return {
          ...r,
          serverCpuUsPerCall: Math.round((cpuUs(mainThread) - before[0]!) / n),
          plannerCpuUsPerCall: Math.round((cpuUs(plannerProcess) - before[1]!) / n),
        };
      };
      const bareMax = await cpuPerCall(() =>
        load.run({ kind: "closed", concurrency: 64, durationMs: maxMs, ...direct }),
      );
      const gatewayMax = await cpuPerCall(() =>
        load.run({ kind: "closed", concurrency: 64, durationMs: maxMs, ...viaGateway }),
      );
      const rates = smoke ? [200] : [500, 1000, 2000, 3000];
      const durationMs = smoke ? 1000 : 5000;
      const openLoop: Record<string, unknown>[] = [];
      for (const rate of rates) {
        const g = await cpuPerCall(() =>
          load.run({ kind: "open", rate, durationMs, ...viaGateway }),
        );
        const b = await cpuPerCall(() => load.run({ kind: "open", rate, durationMs, ...direct }));
        openLoop.push({ rate, gateway: g, bare: b });
      }
      const at2000 = openLoop.find((r) => r.rate === 2000)?.gateway as
        | { achievedRate: number; errors: number; dropped: number; latency: { p99Us: number } }
        | undefined;
      const ratio = Math.round((gatewayMax.rate / bareMax.rate) * 100) / 100;
      return {
        protocol:
          "connect+proto over HTTP/2 (h2c) from a worker thread; gateway → planner process over mTLS gRPC",
        playbooks: listed.playbooks.length,
        // The machine is shared: its 1/5/15-minute load before and after the measurements.
        loadAverage: { before: loadBefore, after: loadavg().map((l) => Math.round(l * 100) / 100) },
        maxRate: { bare: bareMax, gateway: gatewayMax, ratioGatewayToBare: ratio },
        openLoop,
        targets: { rps: 2000, p99Ms: 10, ratioToBare: 0.4 },
        meetsTargets:
          at2000 !== undefined &&
          at2000.errors === 0 &&
          at2000.dropped === 0 &&
          at2000.achievedRate >= 1900 &&
          at2000.latency.p99Us <= 10_000 &&
          ratio >= 0.4,
      };
    } finally {
      await load.close();
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => bare.close(() => resolve()));
      await gw.close();
      await planner.kill();
      await mesh.stop();
    }
  },
};
