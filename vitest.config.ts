import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "dist/**", "gen/**"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests share one PostgreSQL and one NATS; files isolate themselves
    // by schema and subject prefix, so they may run in parallel.
    pool: "forks",
    reporters: ["default", "./test/summary-reporter.ts"],
  },
});
