import type { Command } from "../command.js";

/**
 * The benchmarks live in `bench/`, which only a checkout has: the shipped
 * build (`dist/`, the image) leaves them and the test support they use out.
 * The module path is a variable so the build does not follow it.
 */
const benchMain = "../../bench/main.js";

/** `agentmesh bench [--smoke] [name ...]`: run benchmarks and print JSON. */
export const bench: Command = {
  name: "bench",
  summary: "run benchmarks (all, or the named ones) and print JSON (in a checkout)",
  usage: "agentmesh bench [--smoke] [name ...]",
  async run(args) {
    // stdout carries the JSON report; keep the mesh's info logs out of it.
    process.env.LOG_LEVEL ??= "warn";
    const smoke = args.includes("--smoke");
    const { runBenchmarks } = (await import(benchMain).catch(() => {
      throw new Error("agentmesh bench runs in a checkout of the repository (npm run bench)");
    })) as { runBenchmarks(names: string[], smoke: boolean): Promise<number> };
    return runBenchmarks(
      args.filter((a) => a !== "--smoke"),
      smoke,
    );
  },
};
