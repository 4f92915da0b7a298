/**
 * Chaos among the mesh's own processes, under a steady stream of goals:
 * agents killed with SIGKILL again and again (others remain), the executor
 * killed and restarted, and one of two executors killed for good. Each
 * scenario ends with the audit: every acknowledged goal SUCCEEDED, none
 * finished twice, and no step's effect happened twice.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needPostgres } from "../../lib/testing/infra.js";
import {
  type Audit,
  auditGoals,
  type ChaosMesh,
  type PrivateNats,
  startChaosMesh,
  startGoalStream,
  startPrivateNats,
} from "./harness.js";

const pg = await needPostgres();
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

describe.skipIf(!pg)("chaos: killing mesh processes under load", () => {
  let nats: PrivateNats;
  let mesh: ChaosMesh;
  beforeAll(async () => {
    nats = await startPrivateNats();
    mesh = await startChaosMesh({ databaseUrl: pg!.url, natsUrl: nats.url, agents: 3 });
  });
  afterAll(async () => {
    await mesh?.stop();
    await nats?.stop();
  });

  it("kill -9 agents repeatedly, others remain", async () => {
    const load = startGoalStream(mesh, { rate: 10 });
    // Every 1.5 s kill the oldest agent and start a fresh one: at least two always consume.
    for (let round = 0; round < 6; round++) {
      await sleep(1_500);
      const [oldest] = mesh.agentKeys();
      await mesh.kill(oldest!);
      await mesh.startAgent();
    }
    const result = await load.stop();
    console.log(`agents: submit failures ${JSON.stringify(Object.fromEntries(result.failures))}`);
    expect(result.unacked).toBe(0);
    // Agents are not on the submit path: no submission may fail.
    expect(result.failures.size).toBe(0);
    expectClean(await auditGoals(mesh, result));
  });

  it("kill -9 the executor, restart it", async () => {
    const load = startGoalStream(mesh, { rate: 10 });
    await sleep(3_000);
    await mesh.kill("executor");
    await sleep(2_000);
    await mesh.start("executor", 0);
    await sleep(4_000);
    const result = await load.stop();
    console.log(
      `executor restart: submit failures (retried) ${JSON.stringify(Object.fromEntries(result.failures))}`,
    );
    expect(result.unacked).toBe(0);
    // While it is down, calls fail fast and retryably.
    for (const code of result.failures.keys())
      expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(code);
    expectClean(await auditGoals(mesh, result));
  });

  it("two executors, one killed for good", async () => {
    await mesh.start("executor", 1);
    const load = startGoalStream(mesh, { rate: 10, replicas: [0, 1] });
    await sleep(4_000);
    await mesh.kill("executor#1");
    await sleep(5_000);
    const result = await load.stop();
    console.log(
      `two executors: submit failures (retried on the other) ${JSON.stringify(Object.fromEntries(result.failures))}`,
    );
    expect(result.unacked).toBe(0);
    for (const code of result.failures.keys())
      expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(code);
    // The survivor took over the dead replica's goals (lease expiry) and finished them.
    expectClean(await auditGoals(mesh, result));
  });
});
