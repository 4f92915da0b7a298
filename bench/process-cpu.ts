/**
 * CPU time from Linux /proc, for benchmarks that split a run's cost between the
 * processes taking part (the mesh's, the load generator's, PostgreSQL's, NATS's).
 * Where /proc is missing a reading is NaN, and so is anything computed from it.
 */
import { readdirSync, readFileSync } from "node:fs";

/** USER_HZ: the unit of utime and stime in /proc stat files on Linux. */
const clockTicks = 100;

/**
 * CPU seconds (user + system) used so far by a process (its pid) or by one
 * thread (a `/proc/<pid>/task/<tid>/stat` path); NaN when it cannot be read.
 */
export function cpuSecondsOf(process: number | string): number {
  const path = typeof process === "number" ? `/proc/${process}/stat` : process;
  try {
    const stat = readFileSync(path, "utf8");
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds so far of every process running one of these commands (e.g. all PostgreSQL backends). */
export function commandCpuSeconds(commands: readonly string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(commands.map((n) => [n, 0]));
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return Object.fromEntries(commands.map((n) => [n, Number.NaN]));
  }
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (comm in out) out[comm]! += cpuSecondsOf(Number(pid));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/** Busy CPU seconds of the whole machine so far (every core), from /proc/stat. */
export function machineBusySeconds(): number {
  try {
    const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/);
    const n = ticks.slice(0, 8).map(Number); // user nice system idle iowait irq softirq steal
    return (n[0]! + n[1]! + n[2]! + n[5]! + n[6]! + n[7]!) / clockTicks;
  } catch {
    return Number.NaN;
  }
}
