import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, type MeshError } from "../errors/mesh-error.js";
import { needPostgres } from "../testing/infra.js";
import {
  adminActionEvent,
  auditHash,
  genesisHash,
  goalSubmittedEvent,
  policyDenialEvent,
  registrationEvent,
} from "./audit-log.js";
import { canonicalJson } from "./canonical-json.js";
import { openTestStore, type TestStore } from "./testing.js";

describe("canonicalJson", () => {
  it("sorts keys at every level and drops undefined", () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: null, y: "x" }], c: undefined } })).toBe(
      '{"a":{"d":[1,{"y":"x","z":null}]},"b":1}',
    );
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
    expect(canonicalJson("é\n")).toBe('"é\\n"');
  });

  it("chains hashes from the genesis hash", () => {
    const event = {
      seq: 1,
      time: new Date(0),
      tenantId: null,
      actor: "a",
      action: "x",
      resource: "r",
      details: {},
    };
    const h1 = auditHash(genesisHash, event);
    expect(h1).toMatch(/^[0-9a-f]{64}$/);
    expect(auditHash(genesisHash, { ...event, actor: "b" })).not.toBe(h1);
    expect(auditHash(h1, event)).not.toBe(h1);
  });
});

const pg = await needPostgres();

describe.skipIf(!pg)("audit log on PostgreSQL", () => {
  let t: TestStore;

  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
  });
  afterAll(() => t?.cleanup());

  const sql = (text: string) => t.store.orm.em.fork().execute(text);

  it("appends concurrently with a gapless sequence and a valid chain", async () => {
    const events = [
      registrationEvent({ actor: "spiffe://a/ns/x/sa/agent", change: "registered", agentId: "a1" }),
      policyDenialEvent({
        peer: "spiffe://a/ns/x/sa/gateway",
        method: "/agentmesh.v1.ExecutorService/SubmitGoal",
        reason: "role missing",
        tenantId: "acme",
        principal: "acme/alice",
      }),
      goalSubmittedEvent({
        actor: "acme/alice",
        tenantId: "acme",
        goalId: "g1",
        kind: "summarize",
      }),
      adminActionEvent({ actor: "root", what: "tenant.created", resource: "tenant/acme" }),
    ];
    const rows = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        t.store.audit.append({
          ...(events[i % events.length] as (typeof events)[number]),
          // Non-ASCII text and a nested "seq" key: the hash is computed in SQL from text split here.
          details: { i, nested: { b: [1, 2], a: "x", seq: 0, z: 1 }, text: 'naïve ☃ "q" \\' },
        }),
      ),
    );
    expect(rows.map((r) => r.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 32 }, (_, i) => i + 1),
    );
    const verdict = await t.store.audit.verify({ batchSize: 7 });
    expect(verdict).toMatchObject({ ok: true, rows: 32, headSeq: 32 });
    expect((await t.store.audit.list({ tenantId: "acme" })).length).toBe(16);
  });

  it("rejects UPDATE, DELETE and TRUNCATE in the database", async () => {
    for (const statement of [
      "update audit_events set actor = 'mallory' where seq = 1",
      "delete from audit_events where seq = 1",
      "truncate audit_events",
    ]) {
      await expect(sql(statement)).rejects.toThrow(/append-only/);
    }
    expect((await t.store.audit.verify()).ok).toBe(true);
  });

  it("reports the first tampered row", async () => {
    // Tampering needs the table owner (or a superuser) to switch the trigger off.
    await sql("alter table audit_events disable trigger audit_events_no_update");
    try {
      await sql(`update audit_events set details = '{"i": 999}' where seq = 5`);
      expect(await t.store.audit.verify()).toMatchObject({
        ok: false,
        seq: 5,
        reason: "hash mismatch",
        rows: 4,
      });

      // Recomputing the tampered row's hash moves the break to the next row.
      const [row] = await t.store.audit.list({ afterSeq: 4, limit: 1 });
      await t.store.orm.em
        .fork()
        .execute("update audit_events set hash = ? where seq = 5", [
          auditHash(row!.prevHash, row!),
        ]);
      expect(await t.store.audit.verify()).toMatchObject({
        ok: false,
        seq: 6,
        reason: "previous hash mismatch",
      });

      await sql("delete from audit_events where seq = 3");
      expect(await t.store.audit.verify()).toMatchObject({
        ok: false,
        seq: 3,
        reason: "sequence gap",
      });
    } finally {
      await sql("alter table audit_events enable trigger audit_events_no_update");
    }
  });

  it("rejects bad events with INVALID_ARGUMENT", async () => {
    const code = await t.store.audit.append({ actor: "", action: "x", resource: "r" }).then(
      () => "ok",
      (err: MeshError) => err.code,
    );
    expect(code).toBe(Code.InvalidArgument);
  });
});
