/**
 * The database going away and coming back, without touching the shared
 * server: the store talks to PostgreSQL through a TCP proxy this test can cut
 * (every connection reset, the port refusing), and backends are killed with
 * pg_terminate_backend.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type MeshError } from "../errors/mesh-error.js";
import { needPostgres, runId } from "../testing/infra.js";
import { openStore } from "./store.js";
import type { StoreHealthStatus } from "./store-health.js";
import { openTestStore, type TestStore } from "./testing.js";

const pg = await needPostgres();

/** A cuttable TCP proxy to PostgreSQL on a fixed local port. */
class CuttableProxy {
  #server: Server | undefined;
  #sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly host: string,
    private readonly targetPort: number,
  ) {}

  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, this.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("close", () => this.#sockets.delete(s));
        s.on("error", () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    const address = server.address();
    if (typeof address === "object" && address) this.port = address.port;
    this.#server = server;
  }

  async down(): Promise<void> {
    for (const s of this.#sockets) s.resetAndDestroy();
    await new Promise<void>((resolve) =>
      this.#server ? this.#server.close(() => resolve()) : resolve(),
    );
    this.#server = undefined;
  }
}

async function codeOf(promise: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await promise;
    return "ok";
  } catch (err) {
    return (err as MeshError).code;
  }
}

describe.skipIf(!pg)("store availability", () => {
  let t: TestStore;
  const url = new URL(pg?.url ?? "postgres://x@127.0.0.1:5432/test");

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    await t.store.tenants.create({ id: "acme", displayName: "Acme" });
  });
  afterAll(() => t?.cleanup());

  it("fails fast with UNAVAILABLE where nothing listens, and opening says so too", async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const address = s.address();
        s.close(() => resolve(typeof address === "object" && address ? address.port : 1));
      });
    });
    const dead = new URL(url);
    dead.port = String(closed);
    const started = Date.now();
    const error = await openStore({ databaseUrl: dead.toString(), schema: t.schema }).catch(
      (err: MeshError) => err,
    );
    expect((error as MeshError).code).toBe(Code.Unavailable);
    expect((error as MeshError).retryable).toBe(true);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("turns not-serving while the database is cut off and recovers by itself", async () => {
    const proxy = new CuttableProxy(url.hostname, Number(url.port || 5432));
    await proxy.up();
    const viaProxy = new URL(url);
    viaProxy.port = String(proxy.port);
    const store = await openStore({
      databaseUrl: viaProxy.toString(),
      schema: t.schema,
      healthProbeMs: 50,
      connectTimeoutMs: 1000,
    });
    const changes: StoreHealthStatus[] = [];
    store.health.onChange((s) => changes.push(s));
    try {
      const goals = store.tenant("acme").goals;
      const { goal } = await goals.create({ kind: "outage", idempotencyKey: "before" });
      expect(store.health.status).toBe("serving");

      await proxy.down();
      const started = Date.now();
      expect(await codeOf(goals.get(goal.id))).toBe(Code.Unavailable);
      expect(await codeOf(goals.create({ kind: "outage" }))).toBe(Code.Unavailable);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(store.health.status).toBe("not_serving");

      await proxy.up();
      // The probe notices on its own; no call is needed to recover.
      await expect.poll(() => store.health.status, { timeout: 5000, interval: 50 }).toBe("serving");
      expect((await goals.get(goal.id)).id).toBe(goal.id);
      // What was acknowledged before the outage is still there, once.
      expect((await goals.create({ kind: "outage", idempotencyKey: "before" })).created).toBe(
        false,
      );
      expect(changes).toEqual(["not_serving", "serving"]);
    } finally {
      await store.close();
      await proxy.down();
    }
  });

  it("survives its connections being terminated by the server", async () => {
    const applicationName = runId("app");
    const store = await openStore({ databaseUrl: pg!.url, schema: t.schema, applicationName });
    try {
      const goals = store.tenant("acme").goals;
      const { goal } = await goals.create({ kind: "terminated" });
      const killed = await t.store.orm.em
        .fork()
        .execute<{ pid: number }[]>(
          "select pg_terminate_backend(pid) as pid from pg_stat_activity where application_name = ?",
          [applicationName],
        );
      expect(killed.length).toBeGreaterThan(0);
      // Each pooled connection that died costs at most two UNAVAILABLE (retryable) answers,
      // then it is replaced: a query sent before the server's goodbye arrives fails with it,
      // and one sent right after (before the socket's close event marks the connection dead
      // in the pool) finds the socket closed.
      const outcomes: (Code | "ok")[] = [];
      for (let i = 0; i < 12 && outcomes.at(-1) !== "ok"; i++)
        outcomes.push(await codeOf(goals.get(goal.id)));
      expect(outcomes.at(-1)).toBe("ok");
      expect(outcomes.slice(0, -1).every((c) => c === Code.Unavailable)).toBe(true);
      expect(outcomes.length - 1).toBeLessThanOrEqual(2 * killed.length);
      expect(store.health.status).toBe("serving");
    } finally {
      await store.close();
    }
  });
});
