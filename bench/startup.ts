/**
 * Start-up of the embedded mesh: time from spawning `node bin/agentmesh.js
 * dev` (what `npm start` runs) with a fresh `AGENTMESH_HOME` until it prints
 * that it is ready — first start (dev CA, certificates and the embedded
 * PostgreSQL `initdb` included) and warm starts on the same home — and the
 * memory of the whole mesh once settled: every process of the `dev` process
 * tree plus the embedded PostgreSQL's (which `pg_ctl` detaches), as summed
 * RSS and as PSS (shared pages split between processes, so not counted twice).
 * The baseline, in the same run: a bare `node -e 0` start.
 *
 * Ports are all free ones and the bus uses its own prefix (dropped after), so
 * it never collides with a mesh already running. The first start also builds
 * the CLI's start-up bundle (bin/source-bundle.js) into the run's own folder
 * under node_modules/.cache, as the first `npm start` after `npm install` does. `--smoke` does one start on
 * the shared PostgreSQL (own schema, dropped after) instead of initdb.
 * Targets: first ≤ 5 s, warm ≤ 2 s, RSS ≤ 400 MB.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats } from "../lib/bus/jetstream-bus.js";
import { packagePath } from "../lib/config/package-root.js";
import { openStore } from "../lib/store/store.js";
import { defaultDatabaseUrl, defaultNatsUrl } from "../lib/testing/infra.js";
import type { Benchmark } from "./benchmark.js";

interface Start {
  readyMs: number;
  rssMiB: number;
  pssMiB: number;
  processes: number;
  bus: string;
}

/** pid → parent pid and memory (KiB) of every process we can read. */
async function processTable(): Promise<Map<number, { ppid: number; cmd: string }>> {
  const out = new Map<number, { ppid: number; cmd: string }>();
  for (const d of await readdir("/proc")) {
    const pid = Number(d);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, "utf8");
      // The command name may hold spaces and parentheses: fields start after the last ")".
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmd = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replace(/\0/g, " ");
      out.set(pid, { ppid, cmd });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function kib(pid: number, file: string, field: string): Promise<number> {
  try {
    const text = await readFile(`/proc/${pid}/${file}`, "utf8");
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The mesh's processes: descendants of `root`, plus PostgreSQL processes serving `home`. */
async function meshMemory(root: number, home: string) {
  const table = await processTable();
  const roots = [root];
  for (const [pid, p] of table)
    if (p.cmd.includes("postgres") && p.cmd.includes(home)) roots.push(pid);
  const pids = new Set<number>();
  const visit = (pid: number) => {
    if (pids.has(pid)) return;
    pids.add(pid);
    for (const [child, p] of table) if (p.ppid === pid) visit(child);
  };
  for (const r of roots) visit(r);
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    rss += await kib(pid, "status", "VmRSS");
    pss += await kib(pid, "smaps_rollup", "Pss");
  }
  return { rssMiB: Math.round(rss / 1024), pssMiB: Math.round(pss / 1024), processes: pids.size };
}

async function startDev(home: string, env: Record<string, string>): Promise<Start> {
  const t0 = process.hrtime.bigint();
  const child: ChildProcess = spawn(process.execPath, ["bin/agentmesh.js", "dev"], {
    env: { ...process.env, ...env, AGENTMESH_HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const tap = (c: Buffer) => {
    out = (out + c.toString()).slice(-20_000);
  };
  child.stdout!.on("data", tap);
  child.stderr!.on("data", tap);
  try {
    const readyMs = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in 120 s:\n${out}`)), 120_000);
      child.stdout!.on("data", () => {
        if (/agentmesh dev: ready in/.test(out)) {
          clearTimeout(timer);
          resolve(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`agentmesh dev exited with ${code}:\n${out}`));
      });
    });
    // Let start-up garbage be collected and lazy work settle before measuring memory.
    await new Promise((r) => setTimeout(r, 3_000));
    const memory = await meshMemory(child.pid!, home);
    const bus = /in-process/i.test(out) ? "in-process" : "jetstream";
    return { readyMs: Math.round(readyMs), ...memory, bus };
  } finally {
    if (child.exitCode === null) {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
    }
  }
}

/** A bare Node start (`node -e 0`): the floor under any start time. */
async function bareNode(): Promise<number> {
  const t0 = process.hrtime.bigint();
  const child = spawn(process.execPath, ["-e", "0"], { stdio: "ignore" });
  await once(child, "exit");
  return Math.round(Number(process.hrtime.bigint() - t0) / 1e6);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const startup: Benchmark = {
  name: "startup",
  description:
    "agentmesh dev (npm start): spawn → ready, first start (initdb) and warm, and whole-mesh RSS/PSS; baseline bare node start",
  async run({ smoke }) {
    const home = await mkdtemp(join(tmpdir(), "bench-startup-"));
    const bundleDir = packagePath(
      "node_modules",
      ".cache",
      `agentmesh-bench-${randomBytes(4).toString("hex")}`,
    );
    const prefix = `benchstart${randomBytes(4).toString("hex")}`;
    const schema = `benchstart${randomBytes(4).toString("hex")}`;
    const databaseUrl = process.env.DATABASE_URL || defaultDatabaseUrl;
    const env: Record<string, string> = {
      AGENTMESH_BUS_PREFIX: prefix,
      AGENTMESH_REGISTRY_PORT: "0",
      AGENTMESH_PLANNER_PORT: "0",
      AGENTMESH_EXECUTOR_PORT: "0",
      AGENTMESH_LEARNING_PORT: "0",
      AGENTMESH_GATEWAY_PORT: "0",
      AGENTMESH_METRICS_PORT: "0",
      LOG_LEVEL: "warn",
      AGENTMESH_BUNDLE_DIR: bundleDir,
      // The embedded defaults: PostgreSQL under AGENTMESH_HOME, unless smoke.
      DATABASE_URL: smoke ? databaseUrl : "",
      ...(smoke ? { AGENTMESH_DB_SCHEMA: schema } : {}),
    };
    const bare = [await bareNode(), await bareNode(), await bareNode()];
    try {
      const first = await startDev(home, env);
      const warm: Start[] = [];
      for (let i = 0; i < (smoke ? 0 : 3); i++) warm.push(await startDev(home, env));
      const warmMs = warm.length > 0 ? median(warm.map((w) => w.readyMs)) : null;
      const rssMiB = Math.max(first.rssMiB, ...warm.map((w) => w.rssMiB));
      const pssMiB = Math.max(first.pssMiB, ...warm.map((w) => w.pssMiB));
      return {
        baseline: { bareNodeStartMs: median(bare) },
        first,
        warm,
        warmMedianMs: warmMs,
        database: smoke
          ? "shared PostgreSQL (own schema)"
          : "embedded PostgreSQL (initdb on first)",
        targets: {
          firstStartMs: { want: "<= 5000", got: first.readyMs, met: first.readyMs <= 5_000 },
          warmStartMs: { want: "<= 2000", got: warmMs, met: warmMs !== null && warmMs <= 2_000 },
          meshRssMiB: {
            want: "<= 400 (PSS; RSS counts shared pages twice)",
            rss: rssMiB,
            pss: pssMiB,
            met: pssMiB <= 400,
          },
        },
      };
    } finally {
      await rm(home, { recursive: true, force: true });
      await rm(bundleDir, { recursive: true, force: true });
      const nc = await connectNats(
        process.env.NATS_URL || defaultNatsUrl,
        "bench-startup",
        1_000,
      ).catch(() => undefined);
      if (nc) {
        const jsm = await jetstreamManager(nc);
        for (const s of Object.values(busNames(prefix).streams))
          await jsm.streams.delete(s).catch(() => false);
        await nc.close();
      }
      if (smoke) {
        const store = await openStore({ databaseUrl, migrate: false }).catch(() => undefined);
        await store?.orm.em
          .fork()
          .execute(`drop schema if exists "${schema}" cascade`)
          .catch(() => undefined);
        await store?.close();
      }
    }
  },
};
