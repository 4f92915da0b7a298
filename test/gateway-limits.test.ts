/**
 * Per-tenant limits at the gateway (rate and open streams), their retry
 * hint, per-tenant overrides from the store, and the CORS allowlist.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("gateway limits", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      // A low rate, so the burst is spent long before a slow (loaded) machine can refill it.
      limits: { defaultRatePerSecond: 1, burstSeconds: 1, defaultMaxStreams: 2 },
      corsOrigins: ["https://app.example.com"],
      stepMs: 60_000, // goals stay running, so WatchGoal streams stay open
    });
    // globex pays for more.
    await f.store.tenants.update("globex", { rateLimitPerSecond: 1000 });
  }, 60_000);
  afterAll(() => f?.close());

  it("answers RESOURCE_EXHAUSTED with retry-after once a tenant's bucket is empty", async () => {
    const acme = createClient({ baseUrl: f.url, apiKey: f.keys.acmeReader });
    const results = await Promise.all(
      Array.from({ length: 25 }, () =>
        acme.registry.listAgents({}).then(() => undefined, ConnectError.from),
      ),
    );
    const refused = results.filter((r): r is ConnectError => r !== undefined);
    expect(refused.length).toBeGreaterThanOrEqual(10);
    expect(refused.every((e) => e.code === Code.ResourceExhausted)).toBe(true);
    expect(refused[0]?.metadata.get("retry-after")).toMatch(/^\d+$/);
    expect(refused[0]?.rawMessage).toMatch(/tenant acme is over its rate of 1 requests\/s/);
    // Another tenant is not affected, and its own higher limit applies.
    const globex = createClient({ baseUrl: f.url, apiKey: f.keys.globexWriter });
    const ok = await Promise.all(Array.from({ length: 25 }, () => globex.registry.listAgents({})));
    expect(ok).toHaveLength(25);
    // The bucket refills.
    await new Promise((r) => setTimeout(r, 1100));
    await acme.registry.listAgents({});
  });

  it("limits open streams per tenant and frees a slot when a stream ends", async () => {
    const globex = createClient({ baseUrl: f.url, apiKey: f.keys.globexWriter });
    const { goal } = await globex.executor.submitGoal({ kind: diamondKind });
    const open = () => {
      const controller = new AbortController();
      const first = (async () => {
        for await (const r of globex.executor.watchGoal(
          { goalId: goal!.goalId },
          { signal: controller.signal },
        )) {
          return r;
        }
      })();
      return { controller, first };
    };
    const a = open();
    const b = open();
    await a.first;
    await b.first;
    const c = open();
    const err = await c.first.then(() => undefined, ConnectError.from);
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/open streams/);
    a.controller.abort();
    // The slot frees once the gateway sees the stream end.
    let d: ReturnType<typeof open> | undefined;
    for (let i = 0; i < 50; i++) {
      d = open();
      const r = await d.first.then(() => "ok", ConnectError.from);
      if (r === "ok") break;
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(await d!.first).toBeDefined();
    b.controller.abort();
    d!.controller.abort();
  });

  it("gives queue statistics to operators only, within their tenant's rate", async () => {
    const get = (key: string) =>
      fetch(`${f.url}/api/v1/queues`, { headers: { authorization: `Bearer ${key}` } });
    // acme's bucket (1/s) was spent by the first test: let it refill, so the role is what answers.
    await new Promise((r) => setTimeout(r, 1100));
    const tenantAdmin = await get(f.keys.acmeAdmin);
    expect(tenantAdmin.status).toBe(403);
    expect(await tenantAdmin.json()).toMatchObject({
      code: "permission_denied",
      message: "queue statistics need the platform.admin role",
    });
    expect((await get("am_nope_nope")).status).toBe(401);
    const operator = await get(f.keys.admin);
    expect(operator.status).toBe(200);
    expect(await operator.json()).toMatchObject({ available: true });
    // Each read takes a token of the tenant's rate (1/s here).
    const statuses = await Promise.all(Array.from({ length: 25 }, () => get(f.keys.admin)));
    const refused = statuses.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(10);
    expect(refused[0]?.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(await refused[0]?.json()).toMatchObject({ code: "resource_exhausted" });
  });

  it("allows CORS only from configured origins", async () => {
    const preflight = (origin: string) =>
      fetch(`${f.url}/agentmesh.v1.ExecutorService/ListGoals`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "content-type,authorization",
        },
      });
    const good = await preflight("https://app.example.com");
    expect(good.status).toBe(204);
    expect(good.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(good.headers.get("access-control-allow-headers")).toMatch(/Authorization/);
    const bad = await preflight("https://evil.example.com");
    expect(bad.status).toBe(403);
    expect(bad.headers.get("access-control-allow-origin")).toBeNull();
  });
});
