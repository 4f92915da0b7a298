import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../lib/log/logger.js";
import { createNotifyChannel } from "../../lib/store/index.js";
import type { Store } from "../../lib/store/store.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import { createPlaybookCatalog } from "./playbook-catalog.js";

const pg = await needPostgres();

const playbook = (goalKind: string) => ({
  goalKind,
  strategies: [{ name: "s", steps: [{ stepId: "a", capability: "util.echo" }] }],
});

describe.skipIf(!pg)("playbook catalog", () => {
  // One store for the three parts below, each part in a tenant of its own.
  let t: TestStore;
  let store: Store;
  const log = createLogger({ name: "playbook-catalog-test", level: "silent" });
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
    for (const id of ["acme", "globex", "initech"]) {
      await store.tenants.create({ id, displayName: id });
    }
  });
  afterAll(() => t?.cleanup());

  describe("the cached tenant list", () => {
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

  /** `store` with a count of the playbook reads made through it (other statements do not count). */
  function countingReads(
    store: Store,
    method: "find" | "list" = "find",
  ): { store: Store; reads: () => number } {
    let reads = 0;
    const counted = new Proxy(store, {
      get(target, key) {
        if (key !== "tenant") return Reflect.get(target, key, target);
        return (tenantId: string) => {
          const tenant = target.tenant(tenantId);
          const playbooks = tenant.playbooks;
          return new Proxy(tenant, {
            get(t, k) {
              if (k !== "playbooks") return Reflect.get(t, k, t);
              return new Proxy(playbooks, {
                get(p, name) {
                  const v = Reflect.get(p, name, p) as unknown;
                  if (name !== method || typeof v !== "function") return v;
                  return (...args: unknown[]) => {
                    reads++;
                    return (v as (...a: unknown[]) => unknown).apply(p, args);
                  };
                },
              });
            },
          });
        };
      },
    });
    return { store: counted, reads: () => reads };
  }

  describe("playbooks kept for planning", () => {
    const strategyOf = async (p: Promise<{ strategies: { name: string }[] }>) =>
      (await p).strategies[0]?.name;
    const named = (name: string) => ({
      goalKind: "kept",
      strategies: [{ name, steps: [{ stepId: "a", capability: "util.echo" }] }],
    });

    it("reads a playbook once while listening, and drops it when any writer changes it", async () => {
      const changes = createNotifyChannel({ store, name: "agentmesh_playbooks", log });
      await changes.start();
      try {
        const counting = countingReads(store);
        const catalog = createPlaybookCatalog({ store: counting.store, changes });
        // The put's own notification arrives after its commit: wait for it, or it could drop
        // what the next read keeps.
        const heard = new Promise<void>((resolve) => {
          const off = changes.subscribe(() => {
            off();
            resolve();
          });
        });
        await store.tenant("globex").playbooks.put("kept", named("first"));
        await heard;
        expect(await strategyOf(catalog.get("globex", "kept"))).toBe("first");
        const before = counting.reads();
        expect(await strategyOf(catalog.get("globex", "kept"))).toBe("first");
        expect(counting.reads()).toBe(before);
        // Written by another replica (straight to the store, no forget()): the trigger's
        // notification drops it.
        await store.tenant("globex").playbooks.put("kept", named("second"));
        await expect.poll(() => strategyOf(catalog.get("globex", "kept"))).toBe("second");
        // Deleted: the global playbook (none for this kind) or NOT_FOUND, never the old one.
        await store.tenant("globex").playbooks.delete("kept");
        await expect
          .poll(() =>
            catalog.get("globex", "kept").then(
              () => "found",
              (e: Error) => e.message,
            ),
          )
          .toMatch(/no playbook/);
      } finally {
        await changes.stop();
      }
    });

    it("keeps a tenant's list while listening, past listCacheMs, until a change drops it", async () => {
      const changes = createNotifyChannel({ store, name: "agentmesh_playbooks", log });
      await changes.start();
      try {
        let now = 0;
        const counting = countingReads(store, "list");
        const catalog = createPlaybookCatalog({
          store: counting.store,
          changes,
          clock: () => now,
          listCacheMs: 1000,
        });
        const kinds = async () => (await catalog.list("globex")).map((p) => p.goalKind);
        expect(await kinds()).not.toContain("listed");
        now += 60_000;
        await kinds();
        expect(counting.reads()).toBe(1);
        // Another replica's write: its notification drops the list.
        await store.tenant("globex").playbooks.put("listed", { ...named("x"), goalKind: "listed" });
        await expect.poll(kinds).toContain("listed");
        expect(counting.reads()).toBe(2);
        await store.tenant("globex").playbooks.delete("listed");
        await expect.poll(kinds).not.toContain("listed");
      } finally {
        await changes.stop();
      }
    });

    it("sees a write committed before the read at once, not when its notification happens to arrive", async () => {
      const changes = createNotifyChannel({ store, name: "agentmesh_playbooks", log });
      await changes.start();
      try {
        const catalog = createPlaybookCatalog({ store, changes });
        const at = (v: string) => ({ ...named(v), goalKind: "at-once" });
        await store.tenant("globex").playbooks.put("at-once", at("v0"));
        for (let v = 1; v <= 20; v++) {
          // Another replica's write (no forget()), then at once a read: never the old one.
          await store.tenant("globex").playbooks.put("at-once", at(`v${v}`));
          const reads = await Promise.all(
            [0, 1, 2].map(() => strategyOf(catalog.get("globex", "at-once"))),
          );
          expect(reads).toEqual([`v${v}`, `v${v}`, `v${v}`]);
        }
      } finally {
        await changes.stop();
      }
    });

    it("reads every time when the channel is not listening", async () => {
      const changes = createNotifyChannel({ store, name: "agentmesh_playbooks", log });
      const counting = countingReads(store);
      const catalog = createPlaybookCatalog({ store: counting.store, changes });
      await store.tenant("globex").playbooks.put("kept", named("third"));
      expect(await strategyOf(catalog.get("globex", "kept"))).toBe("third");
      const before = counting.reads();
      expect(await strategyOf(catalog.get("globex", "kept"))).toBe("third");
      expect(counting.reads()).toBe(before + 1);
    });
  });

  describe("the listening connection lost", () => {
    it("reads every time until it listens again, then drops what it kept", async () => {
      const changes = createNotifyChannel({
        store,
        name: "agentmesh_playbooks",
        log,
        reconnectMs: 50,
      });
      await changes.start();
      try {
        const events: string[] = [];
        changes.subscribe((e) => events.push(e.type));
        const counting = countingReads(store);
        const catalog = createPlaybookCatalog({ store: counting.store, changes });
        await store.tenant("initech").playbooks.put("lost", {
          goalKind: "lost",
          strategies: [{ name: "one", steps: [{ stepId: "a", capability: "util.echo" }] }],
        });
        await expect.poll(() => events.length).toBeGreaterThan(0);
        expect((await catalog.get("initech", "lost")).strategies[0]?.name).toBe("one");
        // The listening backend ends (as when PostgreSQL restarts).
        await store.orm.em
          .fork()
          .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where query = ? and pid <> pg_backend_pid()",
            [`listen "${changes.channel}"`],
          );
        await expect.poll(() => events.includes("resync"), { timeout: 10_000 }).toBe(true);
        expect(changes.listening()).toBe(true);
        const before = counting.reads();
        await catalog.get("initech", "lost");
        expect(counting.reads()).toBe(before + 1);
      } finally {
        await changes.stop();
      }
    });
  });
});
