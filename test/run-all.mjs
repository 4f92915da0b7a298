#!/usr/bin/env node
// `npm test`: the main suite (files in parallel), then the chaos suite (one
// scenario at a time, since each kills and restarts processes on purpose),
// then the hostile-input suite (one file at a time, since each times the
// host's /healthz), then one closing line with the totals. Arguments go to both runs
// (e.g. `npm test -- --bail=1`); to run a few files use `npx vitest run <files>`.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";

const summaryFile = "test-results/summary.jsonl";
rmSync(summaryFile, { force: true });
const args = process.argv.slice(2);
const runs = [
  ["vitest", "run", ...args],
  ["vitest", "run", "-c", "test/chaos/vitest.config.ts", ...args],
  ["vitest", "run", "-c", "test/hostile-input/vitest.config.ts", ...args],
];
let failed = false;
for (const run of runs) {
  const { status } = spawnSync("npx", run, {
    stdio: "inherit",
    env: { ...process.env, AGENTMESH_TEST_SUMMARY: summaryFile },
  });
  if (status !== 0) failed = true;
}
const totals = { passed: 0, failed: 0, skipped: 0 };
try {
  for (const line of readFileSync(summaryFile, "utf8").split("\n").filter(Boolean)) {
    const s = JSON.parse(line);
    for (const k of Object.keys(totals)) totals[k] += s[k];
  }
} catch {
  failed = true;
}
if (failed && totals.failed === 0) totals.failed = 1; // a run that crashed before reporting
console.log(`\ntotal: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(failed ? 1 : 0);
