import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { migrationNames } from "../../lib/store/migrations/index.js";
import { openTestStore } from "../../lib/store/testing.js";
import { needPostgres, runId } from "../../lib/testing/infra.js";
import { UsageError } from "../command.js";
import { audit } from "./audit.js";
import { db } from "./db.js";

const pg = await needPostgres();

describe.skipIf(!pg)("agentmesh db and audit", () => {
  const schema = runId("s");
  const saved = process.env.DATABASE_URL;
  process.env.DATABASE_URL = pg?.url;
  const out = vi.spyOn(console, "log").mockImplementation(() => undefined);
  const err = vi.spyOn(console, "error").mockImplementation(() => undefined);

  afterAll(async () => {
    // openTestStore on the same schema gives us its cleanup (drop schema).
    const t = await openTestStore({ databaseUrl: pg!.url, schema, migrate: false });
    await t.cleanup();
    process.env.DATABASE_URL = saved;
    out.mockRestore();
    err.mockRestore();
  });

  const lastJson = () => JSON.parse(String(out.mock.calls.at(-1)?.[0]));

  it("migrates, reports status, verifies the audit chain and reverts", async () => {
    expect(await db.run(["status", "--schema", schema])).toBe(0);
    expect(lastJson().pending).toEqual(migrationNames);
    expect(await db.run(["migrate", "--schema", schema])).toBe(0);
    expect(lastJson().applied).toEqual(migrationNames);
    expect(await audit.run(["verify", "--schema", schema])).toBe(0);
    expect(lastJson()).toMatchObject({ ok: true, rows: 0 });

    const t = await openTestStore({ databaseUrl: pg!.url, schema, migrate: false });
    await t.store.audit.append({ actor: "root", action: "admin.test", resource: "x" });
    await t.store.orm.em.fork().execute(`
      alter table audit_events disable trigger audit_events_no_update;
      update audit_events set actor = 'mallory';
      alter table audit_events enable trigger audit_events_no_update`);
    await t.store.close();
    // The failure also goes to the SIEM sink the settings name.
    const siemDir = await mkdtemp(join(tmpdir(), "agentmesh-siem-"));
    const siemFile = join(siemDir, "siem.jsonl");
    process.env.AGENTMESH_SIEM_SINK = "file";
    process.env.AGENTMESH_SIEM_ADDRESS = siemFile;
    try {
      expect(await audit.run(["verify", "--schema", schema])).toBe(3);
    } finally {
      delete process.env.AGENTMESH_SIEM_SINK;
      delete process.env.AGENTMESH_SIEM_ADDRESS;
    }
    expect(lastJson()).toMatchObject({ ok: false, seq: 1, reason: "hash mismatch" });
    const [finding] = (await readFile(siemFile, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(finding).toMatchObject({
      class_uid: 2004,
      metadata: { event_code: "audit.verify_failed" },
      unmapped: { reason: "hash mismatch", seq: 1 },
    });
    await rm(siemDir, { recursive: true, force: true });

    expect(await db.run(["down", "--schema", schema])).toBe(0);
    expect(lastJson().reverted).toEqual([...migrationNames].reverse());
  });

  it("rejects bad arguments with a usage error", async () => {
    await expect(db.run(["sideways"])).rejects.toBeInstanceOf(UsageError);
    await expect(db.run(["migrate", "--schema"])).rejects.toBeInstanceOf(UsageError);
    await expect(audit.run([])).rejects.toBeInstanceOf(UsageError);
  });
});
