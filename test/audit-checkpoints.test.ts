/**
 * Tamper evidence against the database's owner, on the real PostgreSQL: the
 * chain's head is checkpointed (signed with a key file the database never
 * sees) into a file outside it; then a superuser deletes the newest rows and
 * resets the head, or rewrites a row and recomputes the whole chain, so the
 * chain alone fits again. `agentmesh audit verify`, run as a user runs it,
 * fails naming what happened; a forged checkpoint fails too.
 */

import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { appendFile, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import {
  signCheckpoint,
  startAuditCheckpoints,
  verifyAuditLog,
} from "../lib/store/audit-checkpoint.js";
import { adminActionEvent, auditHash } from "../lib/store/audit-log.js";
import { openTestStore, type TestStore } from "../lib/store/testing.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh } from "./support/mesh.js";

const exec = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg)("audit checkpoints against a superuser", () => {
  let t: TestStore;
  let home: string;
  let keyPath: string;
  let filePath: string;
  const keyStore = () =>
    openFileSecrets({ home, env: { AGENTMESH_AUDIT_CHECKPOINT_KEY: keyPath }, pollMs: 0 });

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    home = await mkdtemp(join(tmpdir(), "agentmesh-audit-"));
    keyPath = join(home, "audit-checkpoint.key");
    filePath = join(home, "audit-checkpoints.jsonl");
  });
  afterAll(async () => {
    await t?.cleanup();
    if (home) await rm(home, { recursive: true, force: true });
  });

  const append = (n: number) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        t.store.audit.append(
          adminActionEvent({ actor: "ops/root", what: "tenant.created", resource: `tenant/t${i}` }),
        ),
      ),
    );

  /** Runs SQL as the superuser the tests connect as, with the append-only triggers off. */
  const asSuperuser = async (statements: [string, unknown[]?][]) => {
    const em = t.store.orm.em.fork();
    await em.transactional(async (tx) => {
      await tx.execute("set local session_replication_role = replica");
      for (const [sql, params] of statements) await tx.execute(sql, params ?? []);
    });
  };

  /** `agentmesh audit verify` in a child process, as an operator runs it. */
  const verifyCli = async () => {
    try {
      const { stdout, stderr } = await exec(
        "node",
        ["bin/agentmesh.js", "audit", "verify", "--schema", t.schema],
        {
          env: {
            ...process.env,
            DATABASE_URL: pg!.url,
            AGENTMESH_HOME: home,
            LOG_LEVEL: "silent",
          },
          timeout: 60_000,
        },
      );
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it("signs the head periodically and at shutdown into a file outside the database", async () => {
    await append(10);
    const checkpoints = await startAuditCheckpoints({
      audit: t.store.audit,
      secrets: keyStore(),
      filePath,
      intervalMs: 60_000,
    });
    await append(5);
    await checkpoints.close();
    const lines = (await readFile(filePath, "utf8")).trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([10, 15]);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect((await stat(filePath)).mode & 0o777).toBe(0o600);
    const ok = await verifyCli();
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      ok: true,
      rows: 15,
      headSeq: 15,
      checkpoint: { seq: 15, count: 2 },
    });
  });

  it("fails verify naming a truncation: the newest rows deleted and the head reset", async () => {
    const [row12] = await t.store.audit.list({ afterSeq: 11, limit: 1 });
    await asSuperuser([
      ["delete from audit_events where seq > 12"],
      ["update audit_head set seq = 12, prev_hash = ?, hash = ?", [row12!.prevHash, row12!.hash]],
    ]);
    // The chain alone fits: only the checkpoint shows what is missing.
    expect(await t.store.audit.verify()).toMatchObject({ ok: true, headSeq: 12 });
    const r = await verifyCli();
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, reason: "truncated", seq: 13 });
    expect(r.stderr).toMatch(
      /audit log tampered: truncated at row 13: the chain ends at row 12, but the checkpoint .* signed row 15: rows were deleted/,
    );
  });

  it("fails verify naming a rewrite: a row changed and the whole chain recomputed", async () => {
    // Grown back past the checkpoint, with different rows: 13, 14, 15, 16.
    await append(4);
    expect(await t.store.audit.verify()).toMatchObject({ ok: true, headSeq: 16 });
    let r = await verifyCli();
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, reason: "rewritten", seq: 15 });

    // An old row rewritten, every hash from it on recomputed, the head moved along.
    const rows = await t.store.audit.list({ limit: 1000 });
    const statements: [string, unknown[]][] = [];
    let prevHash = rows[2]!.prevHash;
    for (const row of rows.slice(2)) {
      const details = row.seq === 3 ? { forged: true } : row.details;
      const hash = auditHash(prevHash, { ...row, details });
      statements.push([
        "update audit_events set details = ?::jsonb, prev_hash = ?, hash = ? where seq = ?",
        [JSON.stringify(details), prevHash, hash, row.seq],
      ]);
      prevHash = hash;
    }
    statements.push(["update audit_head set hash = ?", [prevHash]]);
    await asSuperuser(statements);
    expect(await t.store.audit.verify()).toMatchObject({ ok: true, headSeq: 16 });
    r = await verifyCli();
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, reason: "rewritten", seq: 10 });
    expect(r.stderr).toMatch(
      /audit log tampered: rewritten at row 10: row 10 has another hash than the checkpoint on line 1 signed: the chain was recomputed/,
    );
  });

  it("refuses a checkpoint not signed with the key, and a cut-short last line is ignored", async () => {
    const other = generateKeyPairSync("ed25519").privateKey;
    const head = await t.store.audit.head();
    const file = join(home, "forged.jsonl");
    await appendFile(file, `${JSON.stringify(signCheckpoint(head, other))}\n`);
    const forged = await verifyAuditLog(t.store.audit, { filePath: file, keyPath });
    expect(forged).toMatchObject({ ok: false, reason: "checkpoint invalid" });
    expect((forged as { detail: string }).detail).toMatch(/line 1: the signature does not verify/);

    // A checkpoint of the current head with its key, then a torn write.
    const checkpoints = await startAuditCheckpoints({
      audit: t.store.audit,
      secrets: keyStore(),
      filePath: join(home, "fresh.jsonl"),
    });
    await checkpoints.close();
    await appendFile(join(home, "fresh.jsonl"), '{"v":1,"seq":99');
    const fresh = await verifyAuditLog(t.store.audit, {
      filePath: join(home, "fresh.jsonl"),
      keyPath,
    });
    expect(fresh).toMatchObject({ ok: true, headSeq: 16, checkpoint: { seq: 16, count: 1 } });
    // The public half verifies as well as the key itself.
    expect(
      await verifyAuditLog(t.store.audit, {
        filePath: join(home, "fresh.jsonl"),
        keyPath: `${keyPath}.pub`,
      }),
    ).toMatchObject({ ok: true });
  });
});

describe.skipIf(!pg || !nats)("audit checkpoints in a running mesh", () => {
  it("a process that owns the store checkpoints its audit head under AGENTMESH_HOME", async () => {
    process.env.AGENTMESH_AUDIT_CHECKPOINT_INTERVAL_MS = "200";
    const mesh = await startTestMesh({ databaseUrl: pg!.url, natsUrl: nats!.url, components: [] });
    try {
      const { store } = mesh.runtime;
      const file = join(mesh.config.home, "audit-checkpoints.jsonl");
      await store.audit.append(
        adminActionEvent({ actor: "ops/root", what: "tenant.created", resource: "tenant/x" }),
      );
      const head = await store.audit.head();
      const report = async () =>
        verifyAuditLog(store.audit, {
          filePath: file,
          keyPath: join(mesh.config.home, "audit-checkpoint.key"),
        });
      const checkpointed = async () => {
        const r = await report();
        return r.ok ? r.checkpoint?.seq : r.reason;
      };
      await expect.poll(checkpointed, { timeout: 10_000 }).toBe(head.seq);
      expect((await stat(join(mesh.config.home, "audit-checkpoint.key"))).mode & 0o777).toBe(0o600);
    } finally {
      delete process.env.AGENTMESH_AUDIT_CHECKPOINT_INTERVAL_MS;
      await mesh.stop();
    }
  });
});
