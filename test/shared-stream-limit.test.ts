/**
 * One tenant's open-stream limit across two gateway replicas in front of one
 * mesh: the streams are leased rows in PostgreSQL (ADR-013), so the replicas
 * together admit the tenant's limit, not twice it, and a stream that ends
 * frees its slot on either replica.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Gateway, meshGatewayOptions, startGateway } from "../gateway/start-gateway.js";
import { createLogger } from "../lib/log/logger.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("a tenant's open streams across gateway replicas", () => {
  let f: GatewayFixture;
  let second: Gateway;
  beforeAll(async () => {
    // Goals stay running, so WatchGoal streams stay open.
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, stepMs: 60_000 });
    second = await startGateway({
      ...(await meshGatewayOptions(f.mesh.runtime)),
      port: 0,
      log: createLogger({ name: "gateway-2", level: "silent" }),
    });
    await f.store.tenants.update("globex", { maxConcurrentStreams: 3 });
  }, 60_000);
  afterAll(async () => {
    await second?.close();
    await f?.close();
  });

  it("admits 3 streams across both replicas, refuses a 4th on either, frees a slot on close", async () => {
    const [one, two] = [f.url, second.url].map((baseUrl) =>
      createClient({ baseUrl, apiKey: f.keys.globexWriter }),
    );
    const { goal } = await one!.executor.submitGoal({ kind: diamondKind });
    const open = (client: typeof one) => {
      const controller = new AbortController();
      const first = (async () => {
        for await (const r of client!.executor.watchGoal(
          { goalId: goal!.goalId },
          { signal: controller.signal },
        )) {
          return r;
        }
      })().then(() => "open" as const, ConnectError.from);
      return { controller, first };
    };
    const streams = [open(one), open(two), open(one)];
    expect(await Promise.all(streams.map((s) => s.first))).toEqual(["open", "open", "open"]);
    for (const client of [one, two]) {
      const refused = await open(client).first;
      expect(refused).toBeInstanceOf(ConnectError);
      expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
      expect((refused as ConnectError).rawMessage).toMatch(/open streams across the mesh/);
      expect((refused as ConnectError).metadata.get("retry-after")).toMatch(/^\d+$/);
    }
    expect(await f.store.streams.count("globex")).toBe(3);
    // Closing a stream on the first replica lets one in on the second.
    streams[0]!.controller.abort();
    let next: ReturnType<typeof open> | undefined;
    for (let i = 0; i < 100; i++) {
      next = open(two);
      if ((await next.first) === "open") break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await next!.first).toBe("open");
    expect(await f.store.streams.count("globex")).toBe(3);
    for (const s of [...streams, next!]) s.controller.abort();
  });
});
