/**
 * Where a goal's time goes under load: the process mesh of `bench/goals` at
 * fixed open-loop rates with the stage trace on (`lib/telemetry/stage-trace.ts`),
 * then each goal's marks joined across processes and printed as a table: every
 * stage's p50, p90, p99 and max, and its mean in the slowest 1 % and 10 % of
 * goals (which stage owns the tail), then each process's event-loop stalls
 * and GC pauses while the level ran. Not a benchmark with a baseline: a tool
 * for finding the stage a lever should target, and for checking it moved.
 *
 *   RATES=200 DURATION_MS=20000 node --import tsx bench/goal-stages.ts
 *   node --import tsx bench/goal-stages.ts /tmp/stages-dir   # a folder of an earlier run
 *
 * Stages, in order (b = the bench process, a = the agent in it, x = the executor):
 * b.intended (the open loop's schedule) → b.call → x.submitIn (SubmitGoal at the
 * executor) → x.planned → x.createWrite (its creation statement starts) →
 * x.created → x.dispatched (job PubAck and events) → b.submitted → a.start →
 * a.end (result PubAck) → x.resultRecv (the result read from the socket) →
 * x.resultIn (a handler slot) → x.commitStart → x.transWrite (its transition
 * statement starts) → x.committed → x.ran (events published) → b.finished.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StageTraceFile } from "../lib/telemetry/stage-trace.js";
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";

const stages = [
  "b.intended",
  "b.call",
  "x.submitIn",
  "x.planned",
  "x.createWrite",
  "x.created",
  "x.dispatched",
  "b.submitted",
  "a.start",
  "a.end",
  "x.resultRecv",
  "x.resultIn",
  "x.commitStart",
  "x.transWrite",
  "x.committed",
  "x.ran",
  "b.finished",
];

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const msText = (us: number) => (us / 1000).toFixed(1).padStart(8);

/** The stage table of the marks in `dir`, skipping the `skip` earliest goals (the warm-up). */
export function stageReport(dir: string, skip: number): string {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as StageTraceFile);
  const goals = new Map<string, Record<string, number>>();
  for (const f of files) {
    for (const [goal, stage, us] of f.marks) {
      const m = goals.get(goal) ?? {};
      goals.set(goal, m);
      m[stage] ??= us; // the first pass (a redelivered result marks again)
    }
  }
  const all = [...goals.values()]
    .filter((m) => stages.every((s) => m[s] !== undefined))
    .sort((a, b) => a["b.intended"]! - b["b.intended"]!)
    .slice(skip);
  if (all.length === 0) return `no goal with every stage in ${dir}`;
  const total = (m: Record<string, number>) => m["b.finished"]! - m["b.intended"]!;
  const totals = all.map(total).sort((a, b) => a - b);
  const [p90, p99] = [pct(totals, 0.9), pct(totals, 0.99)];
  const top1 = all.filter((m) => total(m) >= p99);
  const top10 = all.filter((m) => total(m) >= p90);
  const lines = [
    `${all.length} goals (of ${goals.size} marked); goal latency ms p50 ${msText(pct(totals, 0.5))} p90 ${msText(p90)} p99 ${msText(p99)} max ${msText(totals.at(-1)!)}`,
    `${"stage (ms since the previous)".padEnd(30)}      p50      p90      p99      max | top 1 % mean | top 10 % mean | all mean`,
  ];
  for (let i = 1; i < stages.length; i++) {
    const [from, to] = [stages[i - 1]!, stages[i]!];
    const d = (m: Record<string, number>) => m[to]! - m[from]!;
    const xs = all.map(d).sort((a, b) => a - b);
    lines.push(
      `${`${from} → ${to}`.padEnd(30)} ${msText(pct(xs, 0.5))} ${msText(pct(xs, 0.9))} ${msText(pct(xs, 0.99))} ${msText(xs.at(-1)!)} | ${msText(mean(top1.map(d)))}     | ${msText(mean(top10.map(d)))}      | ${msText(mean(xs))}`,
    );
  }
  const [t0, t1] = [all[0]!["b.intended"]!, Math.max(...all.map((m) => m["b.finished"]!))];
  for (const f of files.sort((a, b) => a.name.localeCompare(b.name))) {
    const stalls = f.stalls.filter(([t]) => t >= t0 && t <= t1).map(([, late]) => late);
    const gcs = f.gcs.filter(([t]) => t >= t0 && t <= t1).map(([, us]) => us);
    stalls.sort((a, b) => b - a);
    lines.push(
      `${f.name.padEnd(10)} stalls > 5 ms: ${stalls.length}, ${msText(mean(stalls) * stalls.length).trim()} ms in all, longest ${stalls
        .slice(0, 3)
        .map((s) => msText(s).trim())
        .join(
          ", ",
        )} ms | GC: ${gcs.length} pauses, ${msText(mean(gcs) * gcs.length).trim()} ms, longest ${msText(Math.max(0, ...gcs)).trim()} ms`,
    );
  }
  return lines.join("\n");
}

if (process.argv[2]) {
  console.log(stageReport(process.argv[2], Number(process.env.SKIP ?? 0)));
} else {
  const dir = mkdtempSync(join(tmpdir(), "goal-stages-"));
  // Read by every process of the run as it loads the stage trace: set before the imports below.
  process.env.AGENTMESH_STAGE_TRACE_DIR = dir;
  process.env.LOG_LEVEL ??= "warn";
  const { drive, startProcessMesh } = await import("./goals.js");
  const rates = (process.env.RATES ?? "200").split(",").filter(Boolean).map(Number);
  const mesh = await startProcessMesh(
    process.env.DATABASE_URL || defaultDatabaseUrl,
    process.env.NATS_URL || defaultNatsUrl,
  );
  const warmUpMs = 2_000;
  const { levels } = await drive(mesh, {
    rates,
    durationMs: Number(process.env.DURATION_MS ?? 20_000),
    warmUpMs,
  });
  for (const l of levels) {
    console.log(
      `level ${l.targetRate}/s: ${l.completed} goals, p50/p99 ${l.goalLatencyMs.p50}/${l.goalLatencyMs.p99} ms, CPU ms per goal ${JSON.stringify(l.cpuMsPerGoal)}`,
    );
  }
  // The components wrote their files as they exited; this process writes its own now.
  const { writeStageTrace } = await import("../lib/telemetry/stage-trace.js");
  writeStageTrace();
  console.log(`stage trace in ${dir}`);
  console.log(stageReport(dir, Math.ceil((20 * warmUpMs) / 1000)));
  process.exit(0);
}
