/**
 * The gateway's cost: in one run, a bare connect-node server answering
 * `PlannerService/ListPlaybooks` itself (baseline) vs the same call through
 * the gateway — API key, tenant limits, policy at the gateway, mTLS gRPC to a
 * stand-in planner with the policy checked again there. The client speaks
 * Connect (binary) over HTTP/2 to both. Each side gets its maximum rate
 * (closed loop) and then fixed rates from an open-loop generator, whose
 * latency counts from each call's intended start (no coordinated omission).
 * Client, gateway and upstream share this process and its cores, so the
 * figures are a floor. Targets (issue 9): ≥ 2,000 rps at p99 ≤ 10 ms through
 * the gateway, and ≥ 40% of the bare echo's maximum rate.
 */
import { createServer, type ServerHttp2Session } from "node:http2";
import { type Client, createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { startGateway } from "../gateway/start-gateway.js";
import { startStandInMesh } from "../gateway/testing.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { createLogger } from "../lib/log/logger.js";
import { createPolicyAuthorizer } from "../lib/policy/authorizer.js";
import { openPolicyEngine } from "../lib/policy/engine.js";
import { committedWasmPath } from "../lib/policy/testing.js";
import { createTestPki } from "../lib/rpc/testing.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import { openTestStore } from "../lib/store/testing.js";
import { defaultDatabaseUrl } from "../lib/testing/infra.js";
import type { Benchmark } from "./benchmark.js";
import { runClosedLoop, runOpenLoop } from "./open-loop.js";

type Planner = Client<typeof PlannerService>;

function client(baseUrl: string, apiKey?: string): Planner {
  return createClient(
    PlannerService,
    createConnectTransport({
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
    }),
  );
}

export const gateway: Benchmark = {
  name: "gateway",
  description:
    "unary call through the gateway (auth, limits, policy at both ends, mTLS hop) vs a bare connect-node server: max rate and open-loop latency",
  async run({ smoke }) {
    const log = createLogger({ name: "bench", level: "silent" });
    const pki = await createTestPki(["gateway", "executor", "registry", "planner", "learning"]);
    const engine = await openPolicyEngine({ wasmPath: committedWasmPath, watch: false });
    const authorizer = createPolicyAuthorizer(engine);
    const mesh = await startStandInMesh({ pki, authorizer });
    const t = await openTestStore({ databaseUrl: process.env.DATABASE_URL || defaultDatabaseUrl });
    await t.store.tenants.create({ id: "bench", displayName: "bench", rateLimitPerSecond: 1e6 });
    const k = newApiKey();
    await t.store.tenant("bench").apiKeys.create({
      keyId: k.keyId,
      secretHash: k.secretHash,
      name: "bench",
      roles: ["goals.read"],
    });
    const gw = await startGateway({
      store: t.store,
      authorizer,
      certs: await pki.watch("gateway"),
      upstreams: mesh.upstreams,
      port: 0,
      dashboard: false,
      limits: { defaultMaxStreams: 1000 },
      log,
    });
    // The baseline: the same method answered by connect-node itself.
    const playbooks = {
      playbooks: [{ goalKind: "research", description: "stand-in playbook", version: 1 }],
    };
    const bare = createServer(
      connectNodeAdapter({
        routes: (r) => r.rpc(PlannerService.method.listPlaybooks, () => playbooks),
      }),
    );
    const sessions = new Set<ServerHttp2Session>();
    bare.on("session", (session) => sessions.add(session));
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
    const address = bare.address();
    const bareUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

    const direct = client(bareUrl);
    const viaGateway = client(gw.url, k.secret);
    const call = (c: Planner) => () => c.listPlaybooks({});
    try {
      // Warm up JITs, connections and caches.
      await runClosedLoop(16, smoke ? 300 : 2000, call(direct));
      await runClosedLoop(16, smoke ? 300 : 2000, call(viaGateway));
      const maxMs = smoke ? 1000 : 5000;
      const bareMax = await runClosedLoop(64, maxMs, call(direct));
      const gatewayMax = await runClosedLoop(64, maxMs, call(viaGateway));
      const rates = smoke ? [200] : [500, 1000, 2000, 3000];
      const durationMs = smoke ? 1000 : 5000;
      const openLoop: Record<string, unknown>[] = [];
      for (const rate of rates) {
        const g = await runOpenLoop({ rate, durationMs, call: call(viaGateway) });
        const b = await runOpenLoop({ rate, durationMs, call: call(direct) });
        openLoop.push({ rate, gateway: g, bare: b });
      }
      const at2000 = openLoop.find((r) => r.rate === 2000)?.gateway as
        | { achievedRate: number; errors: number; latency: { p99Us: number } }
        | undefined;
      const ratio = Math.round((gatewayMax.rate / bareMax.rate) * 100) / 100;
      return {
        protocol: "connect+proto over HTTP/2 (h2c), gateway → upstream mTLS gRPC",
        maxRate: { bare: bareMax, gateway: gatewayMax, ratioGatewayToBare: ratio },
        openLoop,
        targets: { rps: 2000, p99Ms: 10, ratioToBare: 0.4 },
        meetsTargets:
          at2000 !== undefined &&
          at2000.errors === 0 &&
          at2000.achievedRate >= 1900 &&
          at2000.latency.p99Us <= 10_000 &&
          ratio >= 0.4,
      };
    } finally {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => bare.close(() => resolve()));
      await gw.close();
      await mesh.close();
      await engine.close();
      await t.cleanup();
      await pki.cleanup();
    }
  },
};
