import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { serialReloads, watchDirectories } from "./file-reload.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("serialReloads", () => {
  it("never overlaps, and runs exactly once more for calls made during a run", async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const reloads = serialReloads(
      async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        runs++;
        await sleep(20);
        active--;
        return true;
      },
      () => false,
    );
    const first = reloads.run();
    const during = [reloads.run(), reloads.run(), reloads.run()];
    expect(during[0]).toBe(first);
    await first;
    await reloads.settled();
    expect(runs).toBe(2);
    expect(maxActive).toBe(1);
  });

  it("skips the follow-up run once closed", async () => {
    let runs = 0;
    let closed = false;
    const reloads = serialReloads(
      async () => {
        runs++;
        await sleep(10);
        return true;
      },
      () => closed,
    );
    void reloads.run();
    void reloads.run();
    closed = true;
    await reloads.settled();
    expect(runs).toBe(1);
  });
});

describe("watchDirectories", () => {
  it("reports a change in a watched folder once per burst", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentmesh-watch-"));
    let changes = 0;
    const watching = watchDirectories([dir], () => changes++, { debounceMs: 50, pollMs: 0 });
    try {
      for (const f of ["a", "b", "c"]) await writeFile(join(dir, f), f);
      await sleep(300);
      expect(changes).toBe(1);
    } finally {
      watching.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("keeps polling where the folder cannot be watched", async () => {
    const errors: string[] = [];
    let polls = 0;
    const watching = watchDirectories(["/nonexistent/agentmesh"], () => polls++, {
      debounceMs: 10,
      pollMs: 20,
      onError: (_err, dir) => errors.push(dir),
    });
    await sleep(150);
    watching.close();
    expect(errors).toEqual(["/nonexistent/agentmesh"]);
    expect(polls).toBeGreaterThanOrEqual(3);
  });
});
