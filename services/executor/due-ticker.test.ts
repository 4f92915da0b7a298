/**
 * The ticker on a clock the test moves, against a real store: it claims work
 * when the clock says so and not before, and leaves a goal younger than the
 * plan grace (by that clock) to the SubmitGoal call planning it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../lib/log/logger.js";
import type { GoalRecord } from "../../lib/store/records.js";
import { openTestStore, type TestStore } from "../../lib/store/testing.js";
import { needPostgres } from "../../lib/testing/infra.js";
import type { Clock } from "./clock.js";
import { DueTicker } from "./due-ticker.js";

const pg = await needPostgres();

/** A clock whose time moves only when `advance` says so. */
function manualClock(start: number) {
  let now = start;
  const timers = new Set<{ at: number; every?: number; fn: () => void }>();
  const clock: Clock = {
    now: () => now,
    setTimeout(fn, ms) {
      const t = { at: now + ms, fn };
      timers.add(t);
      return () => timers.delete(t);
    },
    setInterval(fn, ms) {
      const t = { at: now + ms, every: ms, fn };
      timers.add(t);
      return () => timers.delete(t);
    },
  };
  const advance = (ms: number) => {
    now += ms;
    for (const t of [...timers]) {
      if (t.at > now) continue;
      if (t.every) t.at += t.every;
      else timers.delete(t);
      t.fn();
    }
  };
  return { clock, advance, pending: () => timers.size };
}

describe.skipIf(!pg)("due ticker", () => {
  let t: TestStore;
  beforeAll(async () => {
    t = await openTestStore({ databaseUrl: pg!.url });
    await t.store.tenants.create({ id: "acme", displayName: "Acme" });
  });
  afterAll(() => t?.cleanup());

  function ticker(clock: Clock, planned: GoalRecord[]) {
    const stats = { ticks: 0 };
    const d = new DueTicker({
      store: t.store,
      owner: "replica-1",
      clock,
      log: createLogger({ name: "test" }),
      tickMs: 200,
      leaseMs: 15_000,
      planGraceMs: 5_000,
      fireDue: async () => undefined,
      planPending: async (g) => void planned.push(g),
      stats,
    });
    return { d, stats };
  }

  /** Lets a tick that started finish its statements. */
  const settle = (d: DueTicker) => d.stop();

  it("ticks on the clock's interval and at a kicked due time, not before", async () => {
    const c = manualClock(Date.now());
    const { d, stats } = ticker(c.clock, []);
    d.start();
    c.advance(199);
    expect(stats.ticks).toBe(0);
    c.advance(1);
    expect(stats.ticks).toBe(1);
    await settle(d);

    const c2 = manualClock(Date.now());
    const second = ticker(c2.clock, []);
    second.d.kickAt(c2.clock.now() + 50);
    c2.advance(50);
    expect(second.stats.ticks).toBe(0);
    c2.advance(2);
    expect(second.stats.ticks).toBe(1);
    // A due time more than a minute ahead is left to the periodic tick.
    second.d.kickAt(c2.clock.now() + 61_000);
    expect(c2.pending()).toBe(0);
    await settle(second.d);
  });

  it("plans a goal only once the clock says it is older than the plan grace", async () => {
    const { goal } = await t.store
      .tenant("acme")
      .goals.create({ id: "g-young", kind: "echo", deadline: new Date(Date.now() + 60_000) });
    const planned: GoalRecord[] = [];
    const c = manualClock(goal.createdAt.getTime() + 1_000);
    const young = ticker(c.clock, planned);
    young.d.kick();
    await settle(young.d);
    expect(planned).toHaveLength(0);

    // The first claim leased the goal for the grace: a clock past both finds it due and old.
    await new Promise((r) => setTimeout(r, 5_100));
    const c2 = manualClock(goal.createdAt.getTime() + 6_000);
    const old = ticker(c2.clock, planned);
    old.d.kick();
    await settle(old.d);
    expect(planned.map((g) => g.id)).toEqual(["g-young"]);
  });
});
