import type { Benchmark } from "./benchmark.js";

/** Every named benchmark, loaded lazily so one bench's imports never slow another. */
export const benchmarks: Record<string, () => Promise<Benchmark>> = {
  bus: async () => (await import("./bus.js")).bus,
  learning: async () => (await import("./learning.js")).learning,
  policy: async () => (await import("./policy.js")).policy,
  rpc: async () => (await import("./rpc.js")).rpc,
};
