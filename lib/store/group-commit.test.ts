import { describe, expect, it } from "vitest";
import { GroupCommit } from "./group-commit.js";

/** A write the test finishes by hand, recording each batch it was given. */
function manualWrite() {
  const batches: number[][] = [];
  const finish: (() => void)[] = [];
  const write = (items: number[]) => {
    batches.push(items);
    return new Promise<(string | Error)[]>((resolve) =>
      finish.push(() => resolve(items.map((i) => (i < 0 ? new Error(`bad ${i}`) : `ok ${i}`)))),
    );
  };
  return { batches, finish, write };
}

const turn = () => new Promise((r) => setImmediate(r));

describe("GroupCommit", () => {
  it("writes a lone item at once, and what queued meanwhile as the next batch", async () => {
    const w = manualWrite();
    const group = new GroupCommit(w.write);
    const first = group.add(1);
    await turn();
    expect(w.batches).toEqual([[1]]);
    const later = [group.add(2), group.add(3)];
    await turn();
    const more = group.add(4);
    await turn();
    // Nothing more is written while the first statement is in flight.
    expect(w.batches).toEqual([[1]]);
    w.finish.shift()!();
    expect(await first).toBe("ok 1");
    await turn();
    expect(w.batches).toEqual([[1], [2, 3, 4]]);
    w.finish.shift()!();
    expect(await Promise.all([...later, more])).toEqual(["ok 2", "ok 3", "ok 4"]);
  });

  it("fails only the item whose outcome is an error; a throw fails its batch", async () => {
    const w = manualWrite();
    const group = new GroupCommit(w.write);
    const blocker = group.add(0);
    await turn();
    const items = [group.add(5), group.add(-6), group.add(7)];
    w.finish.shift()!();
    await blocker;
    await turn();
    w.finish.shift()!();
    const settled = await Promise.allSettled(items);
    expect(settled.map((s) => (s.status === "fulfilled" ? s.value : String(s.reason)))).toEqual([
      "ok 5",
      "Error: bad -6",
      "ok 7",
    ]);

    const failing = new GroupCommit<number, string>(async () => {
      throw new Error("store away");
    });
    await expect(Promise.all([failing.add(1), failing.add(2)])).rejects.toThrow("store away");
    // And it goes on afterwards.
    const sizes: number[] = [];
    const ok = new GroupCommit<number, number>(async (items) => items, {
      maxBatch: 2,
      onBatch: (n) => sizes.push(n),
    });
    expect(await Promise.all([ok.add(1), ok.add(2), ok.add(3)])).toEqual([1, 2, 3]);
    expect(sizes).toEqual([2, 1]);
  });

  it("keeps items with the same key in different batches, in order, and counts its batches", async () => {
    const w = manualWrite();
    const group = new GroupCommit(w.write, {
      key: (i: number) => String(Math.abs(i)),
      maxBatch: 3,
    });
    const all = [1, 1, 2, 3, 4, 5].map((i) => group.add(i));
    await turn();
    expect(w.batches).toEqual([[1, 2, 3]]);
    w.finish.shift()!();
    await turn();
    expect(w.batches).toEqual([
      [1, 2, 3],
      [1, 4, 5],
    ]);
    w.finish.shift()!();
    expect(await Promise.all(all)).toEqual(["ok 1", "ok 1", "ok 2", "ok 3", "ok 4", "ok 5"]);
    expect(group.stats).toEqual({ batches: 2, items: 6, largest: 3 });
  });
});
