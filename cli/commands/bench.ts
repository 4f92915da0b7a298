import { runBenchmarks } from "../../bench/main.js";
import type { Command } from "../command.js";

/** `agentmesh bench [--smoke] [name ...]`: run benchmarks and print JSON. */
export const bench: Command = {
  name: "bench",
  summary: "run benchmarks (all, or the named ones) and print JSON",
  usage: "agentmesh bench [--smoke] [name ...]",
  run(args) {
    // stdout carries the JSON report; keep the mesh's info logs out of it.
    process.env.LOG_LEVEL ??= "warn";
    const smoke = args.includes("--smoke");
    return runBenchmarks(
      args.filter((a) => a !== "--smoke"),
      smoke,
    );
  },
};
