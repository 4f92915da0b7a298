/**
 * Statements outside transactions reach PostgreSQL as named prepared
 * statements with bind parameters (see lib/store/db.ts). A second store on
 * the test's schema with a pool of one connection shows, in that session's
 * `pg_prepared_statements`, what it kept.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Code, type MeshError } from "../errors/mesh-error.js";
import { needPostgres } from "../testing/infra.js";
import { openStore, type Store } from "./store.js";
import { openTestStore, type TestStore } from "./testing.js";

const pg = await needPostgres();

describe.skipIf(!pg)("store: prepared statements", () => {
  let t: TestStore | undefined;
  let single: Store | undefined;
  afterEach(async () => {
    await single?.close();
    await t?.cleanup();
    t = single = undefined;
  });

  /** A store on a fresh migrated schema whose pool is one connection. */
  const openSingle = async (preparedStatements?: boolean) => {
    t = await openTestStore({ databaseUrl: pg!.url });
    single = await openStore({
      databaseUrl: pg!.url,
      schema: t.schema,
      migrate: false,
      poolSize: 1,
      ...(preparedStatements === undefined ? {} : { preparedStatements }),
    });
    return single;
  };

  /** Prepared statements of the store's one pooled connection. */
  const preparedOf = async (store: Store) => {
    const rows = await store.orm.em
      .fork()
      .execute<{ name: string; statement: string }[]>(
        "select name, statement from pg_prepared_statements where name like 'am\\_%'",
      );
    return rows;
  };

  it("prepares a statement's text once per connection and binds its values", async () => {
    const store = await openSingle();
    // Values that would break or change a statement written into its text.
    const tricky = `O'Brien "quoted" ? $1 \\ ; drop table goals; -- 日本`;
    await store.tenants.create({ id: "acme", displayName: tricky });
    const before = (await preparedOf(store)).length;
    expect((await store.tenants.get("acme")).displayName).toBe(tricky);
    const afterFirst = await preparedOf(store);
    expect(afterFirst.length).toBe(before + 1);
    // The same text again: no new prepared statement, the same answer.
    expect((await store.tenants.get("acme")).displayName).toBe(tricky);
    expect(await preparedOf(store)).toEqual(afterFirst);
    // Bind parameters, not literals, in the prepared text.
    expect(afterFirst.every((p) => !p.statement.includes("acme"))).toBe(true);
    expect(afterFirst.some((p) => p.statement.includes("$1"))).toBe(true);
  });

  it("prepares a statement again when its table changed shape since (a newer replica migrated)", async () => {
    const store = await openSingle();
    await store.tenants.create({ id: "acme", displayName: "Acme" });
    expect((await store.tenants.get("acme")).displayName).toBe("Acme"); // prepared: select *
    await t!.store.orm.em.fork().execute(`alter table "${t!.schema}".tenants add column extra int`);
    expect((await store.tenants.get("acme")).displayName).toBe("Acme");
    expect((await store.tenants.get("acme")).displayName).toBe("Acme");
  });

  it("with preparedStatements: false sends unnamed statements that behave the same", async () => {
    const store = await openSingle(false);
    await store.tenants.create({ id: "acme", displayName: "Acme" });
    expect((await store.tenants.get("acme")).displayName).toBe("Acme");
    const missing = await store.tenants.get("nobody").catch((err: MeshError) => err.code);
    expect(missing).toBe(Code.NotFound);
    expect(await preparedOf(store)).toEqual([]);
  });
});
