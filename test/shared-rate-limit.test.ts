/**
 * One tenant's rate limit across two gateway replicas in front of one mesh:
 * together they admit the tenant's rate, not twice it (the shared bucket in
 * PostgreSQL, ADR-013), and the refused calls carry the retry hint.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, meshGatewayOptions, startGateway } from "../gateway/start-gateway.js";
import { createLogger } from "../lib/log/logger.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("a tenant's rate across gateway replicas", () => {
  let f: GatewayFixture;
  let second: Gateway;
  // A burst of 5 s of rate: the calls take well under the refill of that many tokens.
  const limits = { burstSeconds: 5 };
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, limits });
    second = await startGateway({
      ...(await meshGatewayOptions(f.mesh.runtime)),
      port: 0,
      limits,
      log: createLogger({ name: "gateway-2", level: "silent" }),
    });
    // 1 request a second, a burst of 5.
    await f.store.tenants.update("globex", { rateLimitPerSecond: 1 });
    // Warm both replicas' connections and upstream channels (another tenant's bucket).
    for (const baseUrl of [f.url, second.url]) {
      await createClient({ baseUrl, apiKey: f.keys.acmeReader }).registry.listAgents({});
    }
  }, 60_000);
  afterAll(async () => {
    await second?.close();
    await f?.close();
  });

  it("admits the limit across both replicas, not twice it", async () => {
    const replicas = [f.url, second.url].map((baseUrl) =>
      createClient({ baseUrl, apiKey: f.keys.globexWriter }),
    );
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        replicas[i % 2]!.registry.listAgents({}).then(
          () => "ok" as const,
          (err: unknown) => ConnectError.from(err),
        ),
      ),
    );
    const elapsedS = (performance.now() - started) / 1000;
    const admitted = outcomes.filter((o) => o === "ok").length;
    const refused = outcomes.filter((o): o is ConnectError => o !== "ok");
    // The burst (5) plus what refilled while the calls ran; two local buckets would admit 10+.
    expect(admitted).toBeGreaterThanOrEqual(5);
    expect(admitted).toBeLessThanOrEqual(Math.floor(5 + elapsedS));
    expect(admitted).toBeLessThan(10);
    expect(refused.every((e) => e.code === Code.ResourceExhausted)).toBe(true);
    expect(refused[0]?.metadata.get("retry-after")).toMatch(/^\d+$/);
    // Both replicas refused some: the bucket is one, not one per replica.
    const refusedBy = [0, 1].map(
      (r) => outcomes.filter((o, i) => i % 2 === r && o !== "ok").length,
    );
    expect(refusedBy.every((n) => n > 0)).toBe(true);
    // The usage counts what the mesh admitted and refused.
    const { usage } = await createClient({
      baseUrl: f.url,
      apiKey: f.keys.admin,
    }).admin.getTenantUsage({
      tenantId: "globex",
    });
    expect(Number(usage?.requestsAdmitted)).toBe(admitted);
    expect(Number(usage?.requestsRefused)).toBe(refused.length);
  });
});
