import { describe, expect, it } from "vitest";
import { GroupCommit, type Settled } from "./group-commit.js";

/** A commit that records its batches and finishes when told to. */
function gate() {
  const batches: string[][] = [];
  let release: (() => void) | undefined;
  const commit = async (items: readonly string[]): Promise<Settled<string>[]> => {
    batches.push([...items]);
    await new Promise<void>((resolve) => {
      release = resolve;
    });
    return items.map((i) =>
      i.startsWith("bad")
        ? { ok: false, error: new Error(i) }
        : { ok: true, value: i.toUpperCase() },
    );
  };
  const next = async () => {
    while (!release) await new Promise((r) => setImmediate(r));
    const r = release;
    release = undefined;
    r();
  };
  return { batches, commit, next };
}

describe("GroupCommit", () => {
  it("commits a lone item at once, with no timer", async () => {
    const g = new GroupCommit<string, string>({
      key: (i) => i,
      commit: async (items) => items.map((i) => ({ ok: true, value: i })),
    });
    const started = performance.now();
    expect(await g.add("a")).toBe("a");
    expect(performance.now() - started).toBeLessThan(50);
    expect(g.stats).toMatchObject({ batches: 1, items: 1 });
  });

  it("groups what arrives together, and what arrives during a commit into the next batch", async () => {
    const { batches, commit, next } = gate();
    const g = new GroupCommit<string, string>({ key: (i) => i, commit, maxBatch: 3 });
    const first = [g.add("a"), g.add("b")];
    await new Promise((r) => setImmediate(r));
    // While [a, b] commits, five more arrive: the next batches take at most 3.
    const rest = ["c", "d", "e", "f", "g"].map((i) => g.add(i));
    await next();
    expect(await Promise.all(first)).toEqual(["A", "B"]);
    await next();
    await next();
    expect(await Promise.all(rest)).toEqual(["C", "D", "E", "F", "G"]);
    expect(batches).toEqual([
      ["a", "b"],
      ["c", "d", "e"],
      ["f", "g"],
    ]);
    expect(g.stats).toEqual({ batches: 3, items: 7, largest: 3 });
  });

  it("keeps items with the same key in different batches, in order", async () => {
    const { batches, commit, next } = gate();
    const g = new GroupCommit<string, string>({ key: (i) => i, commit });
    const all = [g.add("a"), g.add("a"), g.add("b")];
    await next();
    await next();
    expect(await Promise.all(all)).toEqual(["A", "A", "B"]);
    expect(batches).toEqual([["a", "b"], ["a"]]);
  });

  it("fails only the items the commit says failed; a commit that throws fails its batch", async () => {
    const { commit, next } = gate();
    const g = new GroupCommit<string, string>({ key: (i) => i, commit });
    const items = [g.add("a"), g.add("bad-1"), g.add("c")];
    await next();
    expect(await Promise.allSettled(items)).toMatchObject([
      { status: "fulfilled", value: "A" },
      { status: "rejected", reason: { message: "bad-1" } },
      { status: "fulfilled", value: "C" },
    ]);

    let calls = 0;
    const throwing = new GroupCommit<string, string>({
      key: (i) => i,
      commit: async (batch) => {
        if (calls++ === 0) throw new Error("database away");
        return batch.map((i) => ({ ok: true, value: i }));
      },
    });
    const failed = [throwing.add("x"), throwing.add("y")];
    expect(await Promise.allSettled(failed)).toMatchObject([
      { status: "rejected", reason: { message: "database away" } },
      { status: "rejected", reason: { message: "database away" } },
    ]);
    // And it keeps going.
    expect(await throwing.add("z")).toBe("z");
  });
});
