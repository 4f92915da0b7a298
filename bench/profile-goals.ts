/**
 * Where a goal's CPU goes: the process mesh of `bench/goals`, driven closed loop
 * (optionally after open-loop levels), printing the same JSON per level and a
 * closed-loop summary. Not a benchmark with a baseline: a tool for measuring one
 * lever before and after, and for profiles.
 *
 *   TOTAL=2000 CONCURRENCY=32 node --import tsx bench/profile-goals.ts
 *   AGENTMESH_CPU_PROF_DIR=/tmp/prof node --cpu-prof --cpu-prof-dir=/tmp/prof \
 *     --import tsx bench/profile-goals.ts   # a .cpuprofile per component and this process
 *   RATES=50,100 DURATION_MS=6000 ...       # open-loop levels first
 */
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";
import { drive, startProcessMesh } from "./goals.js";

process.env.LOG_LEVEL ??= "warn";
const total = Number(process.env.TOTAL ?? 2_000);
const concurrency = Number(process.env.CONCURRENCY ?? 32);
const rates = (process.env.RATES ?? "").split(",").filter(Boolean).map(Number);
const mesh = await startProcessMesh(
  process.env.DATABASE_URL || defaultDatabaseUrl,
  process.env.NATS_URL || defaultNatsUrl,
);
const driven = await drive(mesh, {
  rates,
  durationMs: Number(process.env.DURATION_MS ?? 6_000),
  warmUpMs: 2_000,
  closed: { total, concurrency },
});
console.log(JSON.stringify(driven, null, 2));
process.exit(0);
