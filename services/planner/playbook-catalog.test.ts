import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Store } from "../../lib/store/store.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import { createPlaybookCatalog } from "./playbook-catalog.js";

const pg = await needPostgres();

const playbook = (goalKind: string) => ({
  goalKind,
  strategies: [{ name: "s", steps: [{ stepId: "a", capability: "util.echo" }] }],
});

describe.skipIf(!pg)("playbook catalog: the cached tenant list", () => {
  let t: TestStore;
  let store: Store;
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    await store.tenants.create({ id: "acme", displayName: "Acme" });
  });
  afterAll(() => t?.cleanup());

  const kinds = async (list: Promise<{ goalKind: string }[]>) =>
    (await list).map((p) => p.goalKind);

  it("reuses a list for listCacheMs, then answers once from it while re-reading it", async () => {
    // A clock the test moves, so a slow store under load cannot age the list early.
    let now = 1_000_000;
    const catalog = createPlaybookCatalog({ store, listCacheMs: 200, clock: () => now });
    await store.tenant("acme").playbooks.put("first", playbook("first"));
    expect(await kinds(catalog.list("acme"))).toContain("first");
    // Written through another replica: not seen while the list is fresh.
    await store.tenant("acme").playbooks.put("second", playbook("second"));
    now += 199;
    expect(await kinds(catalog.list("acme"))).not.toContain("second");
    now += 2;
    // Stale: the old list once, without waiting on the store...
    expect(await kinds(catalog.list("acme"))).not.toContain("second");
    // ...and the re-read one soon after.
    await expect.poll(() => kinds(catalog.list("acme"))).toContain("second");
  });

  it("sees this replica's writes at once after forget()", async () => {
    const catalog = createPlaybookCatalog({ store, listCacheMs: 60_000 });
    expect(await kinds(catalog.list("acme"))).not.toContain("third");
    await store.tenant("acme").playbooks.put("third", playbook("third"));
    catalog.forget("acme");
    expect(await kinds(catalog.list("acme"))).toContain("third");
  });
});
