import { defineConfig } from "vitest/config";

/**
 * The hostile-input suite: each file attacks an agent (or a whole `agentmesh
 * dev`) and times the host's `/healthz` against a 100 ms bound, so files run
 * one at a time, after the main suite, where the rest of the tests do not
 * compete for the CPU: `vitest run -c test/hostile-input/vitest.config.ts`
 * (`npm run test:hostile`).
 */
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/hostile-input/**/*.hostile.ts"],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: "forks",
    fileParallelism: false,
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
