/**
 * Where a goal's time goes, across processes: with `AGENTMESH_STAGE_TRACE_DIR`
 * set, each process records when each goal passes a stage of its path
 * (`mark`), its event-loop stalls (a 5 ms timer late by more than 5 ms) and
 * its GC pauses, and writes them as JSON into that folder when it exits.
 * Times are the system-wide monotonic clock (`process.hrtime`), so the marks
 * of different processes on one machine compare. Unset (always, outside a
 * bench run), `mark` is one boolean test. `bench/goal-stages.ts` joins the
 * files and prints each stage's share of p50 and p99.
 *
 * @example
 * mark(goalId, "x.created"); // this goal's creation statement is back
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver, performance } from "node:perf_hooks";
import { settings } from "../config/settings.js";

const dir = settings.stageTraceDir.read(process.env);

/** Whether this process records stages. */
export const stageTraceOn = dir !== undefined && dir !== "";

/** What one process wrote: `[goal, stage, µs]` marks, `[end µs, late µs]` stalls, `[start µs, µs, kind]` GCs. */
export interface StageTraceFile {
  name: string;
  pid: number;
  marks: [string, string, number][];
  stalls: [number, number][];
  gcs: [number, number, number][];
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const trace: StageTraceFile = {
  name: processName(),
  pid: process.pid,
  marks: [],
  stalls: [],
  gcs: [],
};

/** Records that `goalId` passed `stage` now (or at `atUs`, a `process.hrtime` time in µs). */
export function mark(goalId: string, stage: string, atUs?: number): void {
  if (stageTraceOn) trace.marks.push([goalId, stage, atUs ?? nowUs()]);
}

/** A component is `agentmesh serve <name>`; anything else is the bench. */
function processName(): string {
  const serve = process.argv.indexOf("serve");
  return serve > 0 ? (process.argv[serve + 1] ?? "serve") : "bench";
}

if (stageTraceOn) {
  let last = nowUs();
  const stallTimer = setInterval(() => {
    const now = nowUs();
    const late = now - last - 5_000;
    if (late > 5_000) trace.stalls.push([now, late]);
    last = now;
  }, 5);
  stallTimer.unref();
  const originUs = nowUs() - performance.now() * 1000;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
      trace.gcs.push([
        Math.round(originUs + e.startTime * 1000),
        Math.round(e.duration * 1000),
        kind,
      ]);
    }
  }).observe({ entryTypes: ["gc"] });
  process.once("exit", writeStageTrace);
}

/** Writes this process's file now (and again at exit, with what came since). */
export function writeStageTrace(): void {
  if (stageTraceOn) {
    writeFileSync(join(dir!, `${trace.name}-${process.pid}.json`), JSON.stringify(trace));
  }
}
