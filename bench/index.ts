import type { Benchmark } from "./benchmark.js";

/** Every named benchmark, loaded lazily so one bench's imports never slow another. */
export const benchmarks: Record<string, () => Promise<Benchmark>> = {
  bus: async () => (await import("./bus.js")).bus,
  gateway: async () => (await import("./gateway.js")).gateway,
  goals: async () => (await import("./goals.js")).goals,
  learning: async () => (await import("./learning.js")).learning,
  "learning-mesh": async () => (await import("./learning-mesh.js")).learningMesh,
  policy: async () => (await import("./policy.js")).policy,
  "rate-limit": async () => (await import("./rate-limit.js")).rateLimit,
  rpc: async () => (await import("./rpc.js")).rpc,
  startup: async () => (await import("./startup.js")).startup,
  store: async () => (await import("./store.js")).store,
};
