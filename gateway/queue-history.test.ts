import { describe, expect, it } from "vitest";
import type { QueueStats } from "../lib/bus/job-bus.js";
import { startQueueHistory } from "./queue-history.js";

describe("queue history", () => {
  it("samples at its interval, keeps its window, forgets queues that are gone", async () => {
    let depth = 0;
    let rows = (): QueueStats[] => [
      { capability: "a", depth: ++depth, lag: depth, ackPending: 0, redelivered: 0 },
    ];
    const history = startQueueHistory({ stats: async () => rows(), intervalMs: 20, windowMs: 60 });
    try {
      await expect.poll(() => history.series("a").depth.length).toBe(3);
      await expect.poll(() => history.series("a").depth[0]).toBeGreaterThan(1);
      const { depth: d } = history.series("a");
      expect(d).toEqual([d[0], (d[0] ?? 0) + 1, (d[0] ?? 0) + 2]);
      rows = () => [];
      await expect.poll(() => history.series("a").depth).toEqual([]);
    } finally {
      history.stop();
    }
  });
});
