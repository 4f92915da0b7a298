/**
 * Envelope encryption of tenants' payloads, against a real PostgreSQL, with
 * data keys wrapped by a file KEK and by Vault Transit (through the loopback
 * stand-in of Vault's API): what is stored is not the plaintext, rotation
 * keeps old payloads readable, erasure makes a tenant's payloads unreadable
 * and leaves other tenants alone.
 */
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "../lib/errors/mesh-error.js";
import { rotateFileKek } from "../lib/secrets/file-key-wrapper.js";
import { openFileSecrets } from "../lib/secrets/file-secrets.js";
import type { SecretStore } from "../lib/secrets/secret-store.js";
import { openVaultSecrets } from "../lib/secrets/vault-secrets.js";
import { eraseTenant, rotateTenantKeys, setTenantEncryption } from "../lib/store/tenant-keys.js";
import { openTestStore, type TestStore } from "../lib/store/testing.js";
import { needPostgres } from "../lib/testing/infra.js";
import { startVaultApiStandIn, type VaultApiStandIn } from "./support/vault-api-stand-in.js";

const pg = await needPostgres();
const exec = promisify(execFile);
const secret = "patient 4711, SSN 123-45-6789";
// Events as the executor stores them (GoalEvent JSON), each with a sensitive output.
const stepSucceeded = { stepSucceeded: { stepId: "a", attempt: 1, output: { summary: secret } } };
const finished = { finished: { status: "GOAL_STATUS_SUCCEEDED", output: { summary: secret } } };

interface Wrapping {
  name: string;
  open(): Promise<{ secrets: SecretStore; rotateKek(): Promise<void>; close(): Promise<void> }>;
}

const wrappings: Wrapping[] = [
  {
    name: "a file KEK",
    async open() {
      const secrets = openFileSecrets({ home: mkdtempSync(join(tmpdir(), "enc-")), env: {} });
      return {
        secrets,
        rotateKek: async () => void (await rotateFileKek(secrets)),
        close: () => secrets.close(),
      };
    },
  },
  {
    name: "Vault Transit (loopback stand-in of Vault's API, not a real Vault)",
    async open() {
      const vault: VaultApiStandIn = await startVaultApiStandIn();
      const secrets = await openVaultSecrets({
        addr: vault.addr,
        auth: { method: "token", token: vault.rootToken },
      });
      return {
        secrets,
        rotateKek: async () => vault.rotateTransitKey("agentmesh"),
        close: async () => {
          await secrets.close();
          await vault.close();
        },
      };
    },
  },
];

describe.skipIf(!pg).each(wrappings)("encryption at rest with $name", (wrapping) => {
  let t: TestStore;
  let keys: Awaited<ReturnType<Wrapping["open"]>>;
  const raw = async (sql: string, params: unknown[]) =>
    t.store.orm.em.fork().execute<Record<string, string>[]>(sql, params);

  beforeAll(async () => {
    keys = await wrapping.open();
    t = await openTestStore({ databaseUrl: pg!.url, secrets: keys.secrets });
    for (const id of ["acme", "beta"]) {
      await t.store.tenants.create({ id, displayName: id });
      await setTenantEncryption(t.store, id, "sensitive", "ops/test");
    }
  });
  afterAll(async () => {
    await t?.cleanup();
    await keys?.close();
  });

  async function goalWithPayloads(tenantId: string) {
    const goals = t.store.tenant(tenantId).goals;
    const { goal } = await goals.create({ kind: "summarize", input: { text: secret } }, [
      { type: "stepSucceeded", data: stepSucceeded },
    ]);
    return goals.update(
      goal.id,
      goal.version,
      { status: "SUCCEEDED", output: { summary: secret } },
      { events: [{ type: "finished", data: finished }] },
    );
  }

  it("stores sealed bytes, not the plaintext, and reads the plaintext back", async () => {
    const goal = await goalWithPayloads("acme");
    const [row] = await raw(
      "select input::text as input, output::text as output from goals where id = ?",
      [goal.id],
    );
    expect(row?.input).toMatch(/^\{"\$sealed": "am1\.1\./);
    expect(row?.input).not.toContain("123-45-6789");
    expect(row?.output).not.toContain("123-45-6789");
    const events = await raw("select data::text as data from goal_events where goal_id = ?", [
      goal.id,
    ]);
    expect(events).toHaveLength(2);
    for (const e of events) expect(e.data).not.toContain("123-45-6789");
    const [key] = await raw("select wrapped from tenant_data_keys where tenant_id = 'acme'", []);
    expect(key?.wrapped).toMatch(wrapping.name === "a file KEK" ? /^kek:v1:/ : /^vault:v1:/);

    const read = await t.store.tenant("acme").goals.get(goal.id);
    expect(read.input).toEqual({ text: secret });
    expect(read.output).toEqual({ summary: secret });
    const history = await t.store.tenant("acme").events.list(goal.id);
    expect(history.map((e) => e.data)).toEqual([stepSucceeded, finished]);
  });

  it("rotation re-wraps the data keys under the new KEK; old payloads stay readable, new ones use a new key", async () => {
    const before = await goalWithPayloads("acme");
    await keys.rotateKek();
    expect(await rotateTenantKeys(t.store, "acme", "ops/test")).toBe(2);
    const wrapped = await raw(
      "select wrapped from tenant_data_keys where tenant_id = 'acme' order by version",
      [],
    );
    expect(wrapped.map((w) => String(w.wrapped).slice(0, 7))).toEqual(
      wrapping.name === "a file KEK" ? ["kek:v2:", "kek:v2:"] : ["vault:v", "vault:v"],
    );
    const after = await goalWithPayloads("acme");
    const [row] = await raw("select input::text as input from goals where id = ?", [after.id]);
    expect(row?.input).toMatch(/"am1\.2\./);
    expect((await t.store.tenant("acme").goals.get(before.id)).input).toEqual({ text: secret });
    expect((await t.store.tenant("acme").goals.get(after.id)).input).toEqual({ text: secret });
  });

  it("erasing a tenant makes none of its payloads readable, leaves other tenants alone, and is audited", async () => {
    const acme = await goalWithPayloads("acme");
    const beta = await goalWithPayloads("beta");
    expect(await eraseTenant(t.store, "acme", "ops/test")).toBe(2);
    await expect(t.store.tenant("acme").goals.get(acme.id)).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    await expect(t.store.tenant("acme").goals.list()).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    await expect(t.store.tenant("acme").events.list(acme.id)).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    expect((await t.store.tenant("beta").goals.get(beta.id)).output).toEqual({ summary: secret });
    expect((await t.store.tenants.protection("acme")).erasedAt).toBeInstanceOf(Date);
    // Nothing new is stored for an erased tenant (new keys would make it readable again).
    await expect(
      t.store.tenant("acme").goals.create({ kind: "summarize", input: { text: secret } }),
    ).rejects.toMatchObject({ code: Code.FailedPrecondition });
    const audit = await raw(
      "select action, details::text as details from audit_events where tenant_id = 'acme' and action = 'admin.tenant.erased'",
      [],
    );
    expect(audit).toHaveLength(1);
    expect(audit[0]?.details).toContain('"dataKeysDestroyed": 2');
  });
});

describe.skipIf(!pg)("agentmesh tenants encryption|rotate-keys|erase", () => {
  it("turns encryption on, rotates and erases a tenant's keys from the command line, audited", async () => {
    const home = mkdtempSync(join(tmpdir(), "enc-cli-"));
    const secrets = openFileSecrets({ home, env: {} });
    const t = await openTestStore({ databaseUrl: pg!.url, secrets });
    try {
      await t.store.tenants.create({ id: "acme", displayName: "acme" });
      await t.store.tenants.create({ id: "beta", displayName: "beta" });
      const cli = async (...args: string[]) => {
        const { stdout } = await exec(
          "node",
          ["bin/agentmesh.js", "tenants", ...args, "--schema", t.schema],
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
        return JSON.parse(stdout) as Record<string, unknown>;
      };
      expect(await cli("encryption", "acme", "sensitive")).toEqual({
        tenant: "acme",
        encryption: "sensitive",
      });
      await cli("encryption", "beta", "all");
      const { goal } = await t.store
        .tenant("acme")
        .goals.create({ kind: "k", input: { text: secret } });
      const { goal: other } = await t.store
        .tenant("beta")
        .goals.create({ kind: "k", input: { text: secret } });
      // This store hears what other processes change (its feed, opened on first use, is live).
      await expect.poll(() => t.store.cipher.hearsChanges).toBe(true);
      expect(await cli("rotate-keys", "acme")).toEqual({ tenant: "acme", dataKeyVersion: 2 });
      expect((await t.store.tenant("acme").goals.get(goal.id)).input).toEqual({ text: secret });
      expect(await cli("erase", "acme")).toEqual({
        tenant: "acme",
        dataKeysDestroyed: 2,
        plaintextGoals: 0,
      });
      // The command ran in another process: this one forgot acme's keys when it was told.
      await expect(t.store.tenant("acme").goals.get(goal.id)).rejects.toMatchObject({
        code: Code.FailedPrecondition,
      });
      expect((await t.store.tenant("beta").goals.get(other.id)).input).toEqual({ text: secret });
      const actions = (await t.store.audit.list({ limit: 100 })).map(
        (a) => `${a.action} ${a.resource}`,
      );
      expect(actions).toEqual(
        expect.arrayContaining([
          "admin.tenant.encryption_set tenant/acme",
          "admin.tenant.keys_rotated tenant/acme",
          "admin.tenant.erased tenant/acme",
        ]),
      );
    } finally {
      await t.cleanup();
      await secrets.close();
    }
  }, 120_000); // four CLI processes, each starting node on a loaded machine
});
