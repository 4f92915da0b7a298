/**
 * Reservations in the shared token buckets: in turn, never deeper than the
 * wait allowed, and counted like takes. Real PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needPostgres } from "../testing/infra.js";
import type { Store } from "./store.js";
import { openTestStore, type TestStore } from "./testing.js";

const pg = await needPostgres();

describe.skipIf(!pg)("rate bucket reservations", () => {
  let t: TestStore;
  let store: Store;
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    store = t.store;
  });
  afterAll(() => t?.cleanup());

  it("hands out turns in order at the rate once the burst is spent, and refuses past the wait allowed", async () => {
    const shape = { rate: 1, burst: 2 };
    const turns = [];
    for (let i = 0; i < 6; i++) turns.push(await store.buckets.reserve("r:one", shape, 3_500));
    // The burst now; then one turn a second (less what refilled while the statements ran).
    expect(turns.slice(0, 2)).toEqual([
      { reserved: true, waitMs: 0 },
      { reserved: true, waitMs: 0 },
    ]);
    const waits = turns.slice(2, 5).map((r) => r.waitMs);
    expect(turns.slice(2, 5).every((r) => r.reserved)).toBe(true);
    for (const [i, w] of waits.entries()) {
      expect(w).toBeGreaterThan((i + 1) * 1000 - 400);
      expect(w).toBeLessThanOrEqual((i + 1) * 1000);
    }
    // A fourth turn would be 4 s away, past the 3.5 s allowed: nothing taken.
    expect(turns[5]).toEqual({ reserved: false, waitMs: 0 });
    expect(await store.buckets.counts("r:one")).toEqual({ admitted: 5, refused: 1 });
  });
});
