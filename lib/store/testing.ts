/**
 * Test helper: a store on the shared test database in a schema of its own,
 * created by the migrations and dropped by `cleanup()`, so test files can run
 * in parallel against one PostgreSQL without seeing each other's rows.
 *
 * @example
 * const pg = await needPostgres();
 * describe.skipIf(!pg)("goals", () => {
 *   let t: TestStore;
 *   beforeAll(async () => { t = await openTestStore({ databaseUrl: pg!.url }); });
 *   afterAll(() => t.cleanup());
 *   it("...", async () => { await t.store.tenants.create({ id: "acme", displayName: "Acme" }); });
 * });
 */
import { runId } from "../testing/infra.js";
import { type OpenStoreOptions, openStore, type Store } from "./store.js";

export interface TestStore {
  store: Store;
  /** The schema the store lives in. */
  schema: string;
  /** Drops the schema and closes the store. */
  cleanup(): Promise<void>;
}

/** Opens a migrated store in a fresh schema (`runId("s")`) of `databaseUrl`. */
export async function openTestStore(
  options: OpenStoreOptions & { databaseUrl: string },
): Promise<TestStore> {
  const schema = options.schema ?? runId("s");
  const store = await openStore({ migrate: true, ...options, schema });
  return {
    store,
    schema,
    cleanup: async () => {
      try {
        await store.orm.em.fork().execute(`drop schema if exists "${schema}" cascade`);
      } finally {
        await store.close();
      }
    },
  };
}
