import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../../lib/bus/jetstream-bus.js";
import { contractBusOptions } from "../../lib/bus/job-bus.contract.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { createLogger } from "../../lib/log/logger.js";
import { openFileSecrets } from "../../lib/secrets/file-secrets.js";
import type { SecretStore } from "../../lib/secrets/secret-store.js";
import { openStore, type Store } from "../../lib/store/store.js";
import { eraseTenant, setTenantEncryption } from "../../lib/store/tenant-keys.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needNats, needPostgres, runId } from "../../lib/testing/infra.js";
import { purgeErasedTenantEvents } from "./erased-tenant-events.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("an erased tenant's goal events leave the bus", () => {
  let secrets: SecretStore;
  let t: TestStore;
  /** The executor's store (the erasure is made through `t.store`, as the CLI does). */
  let executorStore: Store;
  let bus: JobBus;
  const prefix = runId("terase");
  const log = createLogger({ name: "test", level: "silent" });

  beforeAll(async () => {
    secrets = openFileSecrets({ home: mkdtempSync(join(tmpdir(), "erased-events-")), env: {} });
    t = await openTestStore({ databaseUrl: pg!.url, secrets });
    executorStore = await openStore({
      databaseUrl: pg!.url,
      schema: t.schema,
      secrets,
      migrate: false,
    });
    bus = await createJetStreamBus({
      ...contractBusOptions,
      prefix,
      servers: nats!.url,
    });
    for (const id of ["gone", "stays", "earlier"]) {
      await t.store.tenants.create({ id, displayName: id });
      await setTenantEncryption(t.store, id, "sensitive", "ops/test");
    }
  });
  afterAll(async () => {
    await bus?.close({ graceMs: 0 });
    const nc = await connectNats(nats!.url);
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(busNames(prefix).streams))
      await jsm.streams.delete(s).catch(() => false);
    await nc.close();
    await executorStore?.close();
    await t?.cleanup();
    await secrets?.close();
  });

  const publish = (tenantId: string, goalId: string) =>
    bus.publishGoalEvent(
      create(GoalEventSchema, {
        goalId,
        tenantId,
        sequence: 1n,
        time: timestampFromMs(Date.now()),
        kind: { case: "submitted", value: {} },
      }),
    );
  /** How many stored events a new watcher of the goal replays. */
  const stored = async (tenantId: string, goalId: string) => {
    const feed = await bus.subscribeGoalEvents(tenantId, goalId);
    let n = 0;
    const reading = (async () => {
      for await (const _ of feed) n++;
    })();
    await new Promise((r) => setTimeout(r, 200));
    await feed.stop();
    await reading;
    return n;
  };

  it("purges on the erasure made by another process, and erasures made while it was away when it starts", async () => {
    await publish("earlier", "g-e");
    // Erased before the executor listens (it was down): purged when it starts.
    await eraseTenant(t.store, "earlier", "ops/test");
    expect(await stored("earlier", "g-e")).toBe(1);
    const stop = purgeErasedTenantEvents({ store: executorStore, bus, log });
    try {
      await expect.poll(() => stored("earlier", "g-e"), { timeout: 10_000 }).toBe(0);
      await publish("gone", "g-1");
      await publish("gone", "g-2");
      await publish("stays", "g-3");
      await eraseTenant(t.store, "gone", "ops/test");
      await expect.poll(() => stored("gone", "g-1"), { timeout: 10_000 }).toBe(0);
      expect(await stored("gone", "g-2")).toBe(0);
      expect(await stored("stays", "g-3")).toBe(1);
    } finally {
      stop();
    }
  });
});
