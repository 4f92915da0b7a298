import { defineConfig } from "vitest/config";

/**
 * The chaos suite: whole meshes of processes, killed and restarted. Files run
 * one at a time (each scenario loads the machine on purpose) and after the
 * main suite: `vitest run -c test/chaos/vitest.config.ts` (`npm run test:chaos`).
 */
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/chaos/**/*.chaos.ts"],
    testTimeout: 240_000,
    hookTimeout: 240_000,
    pool: "forks",
    fileParallelism: false,
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
