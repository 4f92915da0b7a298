/**
 * Prints one closing line `tests: N passed, N failed, N skipped` after a run,
 * the plain summary CI reads whatever the runner, and appends the counts to
 * `AGENTMESH_TEST_SUMMARY` when set (so `test/run-all.mjs` can add up suites).
 */
import { appendFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { Reporter, TestModule } from "vitest/node";

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const module of modules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      if (module.state() === "failed" && [...module.children.allTests()].length === 0) failed++;
    }
    console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
    const file = process.env.AGENTMESH_TEST_SUMMARY;
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      appendFileSync(file, `${JSON.stringify({ passed, failed, skipped })}\n`);
    }
  }
}
