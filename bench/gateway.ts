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
 *
 * The hop's own baselines, also in the same run (issue 23): a bare grpc-js
 * server in a process of its own (the planner's certificate, the planner's
 * answer as fixed bytes) called over mTLS by a bare grpc-js client on this
 * process's main thread, which gives a bare client's CPU per call (the most a
 * gateway should add to a bare connect-node server) and a bare server's (what
 * the planner process is compared with). Targets: the gateway reaches ≥ 0.6 of
 * bare connect-node's maximum rate, its CPU per call is at most bare
 * connect-node's plus a bare grpc-js client call's, and the planner's at most
 * twice the bare grpc-js server's.
 */
import { readFileSync } from "node:fs";
import { createServer, type ServerHttp2Session } from "node:http2";
import { loadavg } from "node:os";
import { create, fromBinary, fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { defaultCompressMinBytes, startGateway } from "../gateway/start-gateway.js";
import {
  ListPlaybooksRequestSchema,
  ListPlaybooksResponseSchema,
  PlannerService,
} from "../gen/agentmesh/v1/planner_pb.js";
import { createLogger } from "../lib/log/logger.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";
import { startTestMesh } from "../lib/testing/mesh.js";
import { spawnComponent } from "../lib/testing/processes.js";
import { certPaths } from "../lib/tls/dev-ca.js";
import { startBareGrpcServer } from "./bare-grpc-server.js";
import type { Benchmark } from "./benchmark.js";
import { startLoadWorker } from "./gateway-load.js";
import { type OpenLoopResult, runClosedLoop, runOpenLoop } from "./open-loop.js";
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
    // The bare grpc-js pair: the planner's answer from a process of its own, asked as the gateway.
    const listPath = `/${PlannerService.typeName}/${PlannerService.method.listPlaybooks.name}`;
    const bareGrpc = await startBareGrpcServer({
      certDir: certPaths(mesh.certDir, "planner").dir,
      path: listPath,
      response: toBinary(ListPlaybooksResponseSchema, listed),
    });
    const bareGrpcCall = bareGrpcCaller(
      certPaths(mesh.certDir, "gateway").dir,
      `127.0.0.1:${bareGrpc.port}`,
      listPath,
      toBinary(
        ListPlaybooksRequestSchema,
        create(ListPlaybooksRequestSchema, { tenantId: "bench" }),
      ),
    );
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
      await runClosedLoop(16, smoke ? 300 : 2000, bareGrpcCall.call);
      const maxMs = smoke ? 1000 : 5000;
      // The main thread only: the load worker is another thread of this process.
      const mainThread = `/proc/${process.pid}/task/${process.pid}/stat`;
      const plannerProcess = `/proc/${planner.process.pid}/stat`;
      const bareGrpcProcess = `/proc/${bareGrpc.process.pid}/stat`;
      // CPU per call of this process's main thread (the gateway, or the bare server) and of the planner.
      const cpuPerCall = async <R extends { completed: number }>(run: () => Promise<R>) => {
        const before = [cpuUs(mainThread), cpuUs(plannerProcess), performance.now()];
        const r = await run();
        const n = Math.max(1, r.completed);
        return {
          ...r,
          serverCpuUsPerCall: Math.round((cpuUs(mainThread) - before[0]!) / n),
          plannerCpuUsPerCall: Math.round((cpuUs(plannerProcess) - before[1]!) / n),
          plannerCpuUs: cpuUs(plannerProcess) - before[1]!,
          seconds: (performance.now() - before[2]!) / 1000,
        };
      };
      // The bare grpc-js client on this main thread (its loop's bookkeeping included) and the bare server process.
      const grpcCpuPerCall = async <R extends { completed: number }>(run: () => Promise<R>) => {
        const before = [cpuUs(mainThread), cpuUs(bareGrpcProcess)];
        const r = await run();
        const n = Math.max(1, r.completed);
        return {
          ...r,
          clientCpuUsPerCall: Math.round((cpuUs(mainThread) - before[0]!) / n),
          serverCpuUsPerCall: Math.round((cpuUs(bareGrpcProcess) - before[1]!) / n),
        };
      };
      const bareMax = await cpuPerCall(() =>
        load.run({ kind: "closed", concurrency: 64, durationMs: maxMs, ...direct }),
      );
      const gatewayMax = await cpuPerCall(() =>
        load.run({ kind: "closed", concurrency: 64, durationMs: maxMs, ...viaGateway }),
      );
      const bareGrpcMax = await grpcCpuPerCall(() => runClosedLoop(64, maxMs, bareGrpcCall.call));
      // What the planner spends with no call at all (timers, pools), per second: measured while
      // the bare server takes the load, and taken off its CPU per call below.
      const plannerIdleCpuUsPerS = Math.round(bareMax.plannerCpuUs / bareMax.seconds);
      const plannerNet = (r: { plannerCpuUs: number; seconds: number; completed: number }) =>
        Math.round((r.plannerCpuUs - plannerIdleCpuUsPerS * r.seconds) / Math.max(1, r.completed));
      const rates = smoke ? [200] : [500, 1000, 2000, 3000];
      const durationMs = smoke ? 1000 : 5000;
      const openLoop: {
        rate: number;
        gateway: Awaited<ReturnType<typeof cpuPerCall<OpenLoopResult>>>;
        bare: Awaited<ReturnType<typeof cpuPerCall<OpenLoopResult>>>;
        bareGrpc: Awaited<ReturnType<typeof grpcCpuPerCall<OpenLoopResult>>>;
      }[] = [];
      for (const rate of rates) {
        const gateway = await cpuPerCall(() =>
          load.run({ kind: "open", rate, durationMs, ...viaGateway }),
        );
        const bare = await cpuPerCall(() =>
          load.run({ kind: "open", rate, durationMs, ...direct }),
        );
        const bareGrpc = await grpcCpuPerCall(() =>
          runOpenLoop({ rate, durationMs, call: bareGrpcCall.call }),
        );
        openLoop.push({ rate, gateway, bare, bareGrpc });
      }
      const at2000 = openLoop.find((r) => r.rate === 2000)?.gateway;
      const ratio = Math.round((gatewayMax.rate / bareMax.rate) * 100) / 100;
      // The hop's CPU per call against its bare counterparts (issue 23): at the maximum rate, and
      // at each fixed rate, where every side answers as many calls a second (a busier server
      // batches more reads and writes per wake-up, so only equal rates compare like with like).
      const hopAt = (
        gateway: { serverCpuUsPerCall: number } & Parameters<typeof plannerNet>[0],
        bareConnect: { serverCpuUsPerCall: number },
        grpc: { clientCpuUsPerCall: number; serverCpuUsPerCall: number },
      ) => {
        const figures = {
          gatewayCpuUsPerCall: gateway.serverCpuUsPerCall,
          bareConnectCpuUsPerCall: bareConnect.serverCpuUsPerCall,
          bareGrpcClientCpuUsPerCall: grpc.clientCpuUsPerCall,
          plannerCpuUsPerCall: plannerNet(gateway),
          bareGrpcServerCpuUsPerCall: grpc.serverCpuUsPerCall,
        };
        return {
          ...figures,
          gatewayWithinBareConnectPlusGrpcClient:
            figures.gatewayCpuUsPerCall <=
            figures.bareConnectCpuUsPerCall + figures.bareGrpcClientCpuUsPerCall,
          plannerWithinTwiceBareGrpcServer:
            figures.plannerCpuUsPerCall <= 2 * figures.bareGrpcServerCpuUsPerCall,
        };
      };
      const hop = {
        plannerIdleCpuUsPerS,
        maxRate: hopAt(gatewayMax, bareMax, bareGrpcMax),
        byRate: Object.fromEntries(
          openLoop.map((r) => [r.rate, hopAt(r.gateway, r.bare, r.bareGrpc)]),
        ),
        ratioAtLeast06: ratio >= 0.6,
      };
      return {
        protocol:
          "connect+proto over HTTP/2 (h2c) from a worker thread; gateway → planner process over mTLS gRPC",
        playbooks: listed.playbooks.length,
        // The machine is shared: its 1/5/15-minute load before and after the measurements.
        loadAverage: { before: loadBefore, after: loadavg().map((l) => Math.round(l * 100) / 100) },
        maxRate: {
          bare: bareMax,
          gateway: gatewayMax,
          bareGrpc: bareGrpcMax,
          ratioGatewayToBare: ratio,
        },
        hop,
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
      bareGrpcCall.close();
      await bareGrpc.close();
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => bare.close(() => resolve()));
      await gw.close();
      await planner.kill();
      await mesh.stop();
    }
  },
};

/** A bare grpc-js mTLS client (channelz off, as the mesh's channels) sending fixed bytes. */
function bareGrpcCaller(certDir: string, address: string, path: string, request: Uint8Array) {
  const read = (file: string) => readFileSync(`${certDir}/${file}`);
  const client = new grpc.Client(
    address,
    grpc.credentials.createSsl(read("ca.crt"), read("tls.key"), read("tls.crt"), {
      // The mesh checks the server's SPIFFE ID; a bare client checks nothing beyond the CA.
      checkServerIdentity: () => undefined,
    }),
    { "grpc.enable_channelz": 0, "grpc.ssl_target_name_override": "planner" },
  );
  const raw = (b: Buffer) => b;
  const body = Buffer.from(request);
  return {
    call: () =>
      new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(
          path,
          raw,
          raw,
          body,
          new grpc.Metadata(),
          { deadline: Date.now() + 30_000 },
          (err, res) => (err ? reject(err) : resolve(res as Buffer)),
        ),
      ),
    close: () => client.close(),
  };
}
