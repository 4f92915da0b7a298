/**
 * Nothing learned is lost to a database outage (issue 15): the learning
 * service on a PostgreSQL of its own (embedded binaries, killed with SIGKILL
 * and restarted on its data) and real JetStream, shipped defaults. Outcomes
 * that arrive while the database is away — longer than the bus's redelivery
 * backoff would last before dead-lettering them — are all stored once it is
 * back; the dead-letter subject receives only the poison message.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutcomeSchema } from "../gen/agentmesh/v1/jobs_pb.js";
import { createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import type { JobBus } from "../lib/bus/job-bus.js";
import { createLogger } from "../lib/log/logger.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../lib/store/embedded-postgres.js";
import { openStore, type Store } from "../lib/store/store.js";
import { needNats, runId } from "../lib/testing/infra.js";
import { freePort } from "../lib/testing/nats-server.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { createLearningService, type LearningServiceHandle } from "../services/learning/index.js";

const nats = await needNats();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const outcome = (goalId: string, tenantId = "acme") =>
  create(OutcomeSchema, {
    goalId,
    context: { tenantId, goalKind: "echo" },
    strategy: "direct",
    success: true,
    latency: durationFromMs(300),
    finishedAt: timestampFromMs(Date.now()),
  });

describe.skipIf(!nats)("learning through a PostgreSQL outage", () => {
  let home: string;
  let port: number;
  let pg: EmbeddedPostgres;
  let store: Store;
  let bus: JobBus;
  let learning: LearningServiceHandle;
  const startPg = async () => {
    pg = await startEmbeddedPostgres({ dataDir: join(home, "data"), port });
  };

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "learning-outage-"));
    port = await freePort();
    await startPg();
    store = await openStore({ databaseUrl: pg.url, migrate: true });
    await store.tenants.create({ id: "acme", displayName: "Acme" });
    bus = await createJetStreamBus({ servers: nats!.url, prefix: runId("lo") });
    learning = createLearningService({ store, bus, log: createLogger({ name: "learning" }) });
    await learning.start();
  }, 120_000);
  afterAll(async () => {
    await learning?.stop();
    await bus?.close({ graceMs: 0 });
    await store?.close().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    if (home) await rm(home, { recursive: true, force: true });
  });

  const stored = async () => {
    const [row] = await store.orm.em
      .fork()
      .execute<{ n: string }[]>("select count(*) as n from experiences");
    return Number(row!.n);
  };

  it("stores every outcome after the database comes back; only poison is dead-lettered", async () => {
    const run = runId("g");
    for (let i = 0; i < 5; i++) await bus.publishOutcome(outcome(`${run}-before-${i}`));
    await waitFor("outcomes before the outage", async () => (await stored()) === 5, 20_000);

    const pid = Number(
      (await readFile(join(home, "data", "postmaster.pid"), "utf8")).split("\n")[0],
    );
    process.kill(pid, "SIGKILL");
    for (let i = 0; i < 10; i++) await bus.publishOutcome(outcome(`${run}-during-${i}`));
    // Longer than 1 + 2 + 4 + 8 s, the redelivery backoff after which the 5th
    // delivery used to move each outcome to the dead letters.
    await sleep(20_000);
    await pg.stop().catch(() => undefined);
    const back = Date.now();
    await startPg();
    await waitFor(
      "outcomes from the outage",
      async () => (await stored().catch(() => 0)) === 15,
      30_000,
    );
    console.log(
      `learning: all outcomes stored ${Date.now() - back} ms after the database was back`,
    );

    // A poison message (no tenant) goes to the dead letters at once, and only it.
    await bus.publishOutcome(outcome(`${run}-poison`, ""));
    await waitFor(
      "the poison outcome dead-lettered",
      async () => (await bus.listDeadLetters()).length > 0,
      20_000,
    );
    await sleep(1_000);
    const letters = await bus.listDeadLetters();
    expect(letters).toHaveLength(1);
    expect(letters[0]!.reason).toContain("tenant");
    expect(await stored()).toBe(15);
  }, 120_000);
});
