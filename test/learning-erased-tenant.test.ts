/**
 * An erased tenant's outcomes still on the bus are dropped by the learning
 * service: not learned from, not redelivered, and not moved to the dead
 * letters (which keep a message a week, against the erasure's promise).
 * Real PostgreSQL, real JetStream, shipped defaults.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OutcomeSchema } from "../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import type { JobBus } from "../lib/bus/job-bus.js";
import { createLogger } from "../lib/log/logger.js";
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import type { SecretStore } from "../lib/secrets/secret-store.js";
import { eraseTenant, setTenantEncryption } from "../lib/store/tenant-keys.js";
import { openTestStore, type TestStore } from "../lib/store/testing.js";
import { needNats, needPostgres, runId } from "../lib/testing/infra.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { createLearningService, type LearningServiceHandle } from "../services/learning/index.js";

const pg = await needPostgres();
const nats = await needNats();

const outcome = (goalId: string, tenantId: string) =>
  create(OutcomeSchema, {
    goalId,
    context: { tenantId, goalKind: "echo", text: "patient 4711" },
    strategy: "direct",
    success: true,
    latency: durationFromMs(300),
    finishedAt: timestampFromMs(Date.now()),
  });

describe.skipIf(!pg || !nats)("learning: outcomes of an erased tenant", () => {
  let secrets: SecretStore;
  let t: TestStore;
  let bus: JobBus;
  let learning: LearningServiceHandle;
  const prefix = runId("lerase");

  beforeAll(async () => {
    secrets = openFileSecrets({ home: mkdtempSync(join(tmpdir(), "learning-erased-")), env: {} });
    t = await openTestStore({ databaseUrl: pg!.url, secrets });
    for (const id of ["gone", "stays"]) {
      await t.store.tenants.create({ id, displayName: id });
      await setTenantEncryption(t.store, id, "sensitive", "ops/test");
    }
    bus = await createJetStreamBus({ servers: nats!.url, prefix });
    learning = createLearningService({
      store: t.store,
      bus,
      log: createLogger({ name: "learning", level: "silent" }),
      trainingSchedule: false,
    });
    await learning.start();
  });
  afterAll(async () => {
    await learning?.stop();
    await bus?.close({ graceMs: 0 });
    const nc = await connectNats(nats!.url);
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(busNames(prefix).streams)) {
      await jsm.streams.delete(s).catch(() => false);
    }
    await nc.close();
    await t?.cleanup();
    await secrets?.close();
  });

  const stored = async (tenantId: string) => {
    const [row] = await t.store.orm.em
      .fork()
      .execute<{ n: string }[]>("select count(*) as n from experiences where tenant_id = ?", [
        tenantId,
      ]);
    return Number(row!.n);
  };

  it("drops them without learning, redelivering or dead-lettering; other tenants learn", async () => {
    await eraseTenant(t.store, "gone", "ops/test");
    for (let i = 0; i < 3; i++) await bus.publishOutcome(outcome(runId("g"), "gone"));
    await bus.publishOutcome(outcome(runId("g"), "stays"));
    await waitFor("the live tenant's outcome", async () => (await stored("stays")) === 1, 20_000);
    const nc = await connectNats(nats!.url);
    try {
      const jsm = await jetstreamManager(nc);
      const learningStream = busNames(prefix).streams.learning;
      await waitFor(
        "every outcome settled",
        async () => {
          const info = await jsm.consumers.info(learningStream, "outcomes");
          return info.num_pending === 0 && info.num_ack_pending === 0;
        },
        20_000,
      );
    } finally {
      await nc.close();
    }
    expect(await stored("gone")).toBe(0);
    expect(await bus.listDeadLetters()).toEqual([]);
  });
});
