import { describe, expect, it } from "vitest";
import { agentsCache } from "./agents-cache.js";

/** A lookup answering `agents` and counting its calls; `gate` holds answers back when set. */
function counted(agents: string[]) {
  const calls: string[] = [];
  let release: (() => void) | undefined;
  let held = false;
  return {
    calls,
    hold() {
      held = true;
    },
    release() {
      held = false;
      release?.();
    },
    lookup: async (capability: string, limit: number) => {
      calls.push(`${capability} ${limit}`);
      if (held) await new Promise<void>((r) => (release = r));
      return [...agents];
    },
  };
}

describe("agentsCache", () => {
  it("reuses an answer within its time, refreshes it in its second half without waiting", async () => {
    let now = 0;
    const registry = counted(["a1"]);
    const cache = agentsCache(registry.lookup, { ttlMs: 1000, clock: () => now });
    expect(await cache.find("echo", 1)).toEqual(["a1"]);
    now = 400;
    expect(await cache.find("echo", 1)).toEqual(["a1"]);
    expect(registry.calls).toHaveLength(1);
    // Second half: answered at once from the kept answer, one refresh sent.
    now = 600;
    registry.hold();
    expect(await cache.find("echo", 1)).toEqual(["a1"]);
    expect(await cache.find("echo", 1)).toEqual(["a1"]);
    expect(registry.calls).toHaveLength(2);
    registry.release();
    await new Promise((r) => setImmediate(r));
    // The first answer (0) would have expired; the refresh counts from when it was sent (600).
    now = 1050;
    expect(await cache.find("echo", 1)).toEqual(["a1"]);
    expect(registry.calls).toHaveLength(2);
  });

  it("never uses an answer older than its time: past it, callers wait for one shared lookup", async () => {
    let now = 0;
    const registry = counted(["a1"]);
    const cache = agentsCache(registry.lookup, { ttlMs: 1000, clock: () => now });
    await cache.find("echo", 1);
    now = 1000;
    registry.hold();
    let answered = 0;
    const waiting = [cache.find("echo", 1), cache.find("echo", 1)].map((p) =>
      p.then(() => answered++),
    );
    await new Promise((r) => setImmediate(r));
    expect(answered).toBe(0);
    expect(registry.calls).toHaveLength(2);
    registry.release();
    await Promise.all(waiting);
    expect(answered).toBe(2);
  });

  it("keeps no empty answer, and a failed refresh leaves the entry to expire", async () => {
    let now = 0;
    const empty = counted([]);
    const none = agentsCache(empty.lookup, { ttlMs: 1000, clock: () => now });
    await none.find("echo", 1);
    await none.find("echo", 1);
    expect(empty.calls).toHaveLength(2);

    let fail = false;
    const errors: unknown[] = [];
    const flaky = agentsCache(
      async () => {
        if (fail) throw new Error("registry down");
        return ["a1"];
      },
      { ttlMs: 1000, clock: () => now, onRefreshError: (e) => errors.push(e) },
    );
    await flaky.find("echo", 1);
    fail = true;
    now = 700;
    expect(await flaky.find("echo", 1)).toEqual(["a1"]);
    await new Promise((r) => setImmediate(r));
    expect(errors).toHaveLength(1);
    now = 1000;
    await expect(flaky.find("echo", 1)).rejects.toThrow("registry down");
  });
});
