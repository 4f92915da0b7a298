/**
 * Runs named benchmarks and prints one JSON document: the machine, then per
 * benchmark its figures beside the baseline measured in the same run.
 *
 * `npm run bench [-- name ...] [-- --smoke]`
 */
import { cpus, freemem, totalmem } from "node:os";
import type { BenchResult } from "./benchmark.js";
import { benchmarks } from "./index.js";

export async function runBenchmarks(names: string[], smoke: boolean): Promise<number> {
  const unknown = names.filter((n) => !(n in benchmarks));
  if (unknown.length > 0) {
    console.error(
      `unknown benchmark(s): ${unknown.join(", ")}; known: ${Object.keys(benchmarks).join(", ")}`,
    );
    return 2;
  }
  const selected = names.length > 0 ? names : Object.keys(benchmarks);
  const results: Record<string, BenchResult> = {};
  let failed = false;
  for (const name of selected) {
    const load = benchmarks[name]!;
    const bench = await load();
    const started = Date.now();
    try {
      results[name] = { description: bench.description, ...(await bench.run({ smoke })) };
    } catch (err) {
      failed = true;
      results[name] = { error: err instanceof Error ? err.message : String(err) };
    }
    (results[name] as Record<string, unknown>).wallMs = Date.now() - started;
  }
  const cpu = cpus();
  const report = {
    time: new Date().toISOString(),
    smoke,
    machine: {
      cores: cpu.length,
      cpu: cpu[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      freeMemoryGiB: Math.round(freemem() / 2 ** 30),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
    },
    results,
  };
  console.log(JSON.stringify(report, null, 2));
  return failed ? 1 : 0;
}
