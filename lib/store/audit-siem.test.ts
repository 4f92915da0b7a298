/**
 * The SIEM copy of an audited admin change leaves only once the change is
 * committed: a transaction that appends its audit row and then fails emits
 * nothing, one that commits emits once, after COMMIT. Real PostgreSQL and
 * the real file sink.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type MeshError } from "../errors/mesh-error.js";
import { needPostgres } from "../testing/infra.js";
import { captureSiemEvents, type SiemCapture } from "../testing/siem-capture.js";
import { adminActionEvent } from "./audit-log.js";
import { openTestStore, type TestStore } from "./testing.js";

const pg = await needPostgres();

describe.skipIf(!pg)("security events of audited admin changes", () => {
  let t: TestStore;
  let siem: SiemCapture;
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    siem = await captureSiemEvents();
  });
  afterAll(async () => {
    await siem?.close();
    await t?.cleanup();
  });

  const emitted = () => siem.exporter.stats().queued + siem.exporter.stats().sent;
  const change = (tenantId: string) =>
    adminActionEvent({
      actor: "default/ops",
      what: "tenant.updated",
      resource: `tenant/${tenantId}`,
      tenantId,
      details: { displayName: "Acme" },
    });

  it("a failing admin transaction emits nothing; a committed one emits once, after COMMIT", async () => {
    await t.store.tenants.create({ id: "acme", displayName: "acme" });

    // The audit row is appended, then the change fails (no such tenant): all rolled back.
    const failed = await t.store
      .transaction(async (tx) => {
        await tx.audit.append(change("ghost"));
        await tx.tenants.update("ghost", { displayName: "Ghost" });
      })
      .then(
        () => undefined,
        (err: MeshError) => err,
      );
    expect(failed?.code).toBe(Code.NotFound);
    expect(await t.store.audit.list({ tenantId: "ghost" })).toEqual([]);
    expect(emitted()).toBe(0);

    let beforeCommit = -1;
    await t.store.transaction(async (tx) => {
      await tx.tenants.update("acme", { displayName: "Acme" });
      await tx.audit.append(change("acme"));
      beforeCommit = emitted();
    });
    expect(beforeCommit).toBe(0);
    expect(emitted()).toBe(1);

    // Outside a transaction an append is its own commit: reported at once.
    await t.store.audit.append(change("acme"));
    expect(emitted()).toBe(2);

    const lines = await siem.events<{ class_uid: number; metadata: { tenant_uid?: string } }>();
    expect(lines.map((l) => [l.class_uid, l.metadata.tenant_uid])).toEqual([
      [3004, "acme"],
      [3004, "acme"],
    ]);
  }, 30_000);
});
