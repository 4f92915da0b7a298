/**
 * The shape of one named benchmark. Each lives in `bench/<name>.ts`, is listed
 * in `bench/index.ts`, and measures itself against a baseline taken in the
 * same run, so ratios are comparable across machines.
 */
export interface BenchOptions {
  /** A short run (seconds) that proves the benchmark still works; CI runs this. */
  smoke: boolean;
}

/** Figures of one benchmark: whatever it measures, with its baseline and ratio. */
export type BenchResult = Record<string, unknown>;

export interface Benchmark {
  name: string;
  /** One line: what is measured against what. */
  description: string;
  run(options: BenchOptions): Promise<BenchResult>;
}
