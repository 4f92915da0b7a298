/**
 * Chaos in the infrastructure under a steady stream of goals, on servers of
 * our own (never the shared ones): NATS killed with SIGKILL and restarted on
 * its JetStream store, and PostgreSQL (the embedded binaries, a private data
 * directory) killed with SIGKILL and restarted. Meanwhile calls fail fast
 * with UNAVAILABLE; afterwards the mesh recovers without help, and the audit
 * holds: every acknowledged goal SUCCEEDED, none twice, no effect twice.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../lib/store/embedded-postgres.js";
import { freePort } from "../../lib/testing/free-port.js";
import {
  type Audit,
  auditGoals,
  type ChaosMesh,
  type PrivateNats,
  startChaosMesh,
  startGoalStream,
  startPrivateNats,
  waitFor,
} from "./harness.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectClean(audit: Audit) {
  console.log(`audit ${JSON.stringify(audit)}`);
  expect(audit.acked).toBeGreaterThan(20);
  expect(audit.notSucceeded).toEqual([]);
  expect(audit.finishedTwice).toEqual([]);
  expect(audit.duplicateKeys).toEqual([]);
  expect(audit.doubleEffects).toEqual([]);
  expect(audit.missingEffects).toEqual([]);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

describe("chaos: restarting NATS and PostgreSQL under load", () => {
  let nats: PrivateNats;
  let pg: EmbeddedPostgres;
  let pgHome: string;
  let pgPort: number;
  let mesh: ChaosMesh;

  const startPg = async () => {
    pg = await startEmbeddedPostgres({ dataDir: join(pgHome, "data"), port: pgPort });
  };

  beforeAll(async () => {
    pgHome = await mkdtemp(join(tmpdir(), "chaos-pg-"));
    pgPort = await freePort();
    await startPg();
    nats = await startPrivateNats();
    mesh = await startChaosMesh({ databaseUrl: pg.url, natsUrl: nats.url, agents: 2 });
  });
  afterAll(async () => {
    await mesh?.stop();
    await nats?.stop();
    await pg?.stop().catch(() => undefined);
    if (pgHome) await rm(pgHome, { recursive: true, force: true });
  });

  it("restart NATS (kill -9, same JetStream store)", async () => {
    const load = startGoalStream(mesh, { rate: 10 });
    await sleep(3_000);
    await nats.kill();
    await sleep(2_000);
    await nats.start();
    await sleep(5_000);
    const result = await load.stop();
    console.log(
      `nats restart: submit failures ${JSON.stringify(Object.fromEntries(result.failures))}, median fail ${median(result.failureMs)} ms; ${result.samples.slice(0, 2).join(" | ")}`,
    );
    expect(result.unacked).toBe(0);
    expectClean(await auditGoals(mesh, result));
    // While the bus is away a submission fails fast and retryably, before anything is stored.
    expect(result.failures.size).toBeGreaterThan(0);
    for (const code of result.failures.keys()) expect(code).toBe("UNAVAILABLE");
    expect(median(result.failureMs)).toBeLessThan(2_000);
  });

  it("restart PostgreSQL (kill -9): calls fail fast with UNAVAILABLE, then the mesh recovers", async () => {
    const load = startGoalStream(mesh, { rate: 10 });
    await sleep(3_000);
    const pid = Number(
      (await readFile(join(pgHome, "data", "postmaster.pid"), "utf8")).split("\n")[0],
    );
    process.kill(pid, "SIGKILL");
    await waitFor("PostgreSQL to die", () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    await sleep(3_000);
    // Forget the dead server, then start it again on the same port and data.
    await pg.stop().catch(() => undefined);
    await startPg();
    await sleep(6_000);
    const result = await load.stop();
    console.log(
      `postgres restart: submit failures ${JSON.stringify(Object.fromEntries(result.failures))}, median fail ${median(result.failureMs)} ms; ${result.samples.slice(0, 2).join(" | ")}`,
    );
    expect(result.unacked).toBe(0);
    expectClean(await auditGoals(mesh, result));
    expect(result.failures.size).toBeGreaterThan(0); // the outage was seen
    for (const code of result.failures.keys()) expect(code).toBe("UNAVAILABLE");
    // Fail fast: well under the 5 s call deadline.
    expect(median(result.failureMs)).toBeLessThan(2_000);
  });
});
