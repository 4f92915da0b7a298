/**
 * Faults in the mesh's own processes, under a mixed workload through the
 * gateway, with the shipped defaults: an agent killed with SIGKILL while it
 * runs a slow step; an agent stopped (SIGSTOP) for longer than its job
 * consumer's ack wait, then continued; one of two executors killed for good.
 * Each ends with the audit (`audit.ts`) and prints its recovery time.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needPostgres } from "../../lib/testing/infra.js";
import { type PrivateNatsServer, startNatsServer } from "../../lib/testing/nats-server.js";
import { sleep } from "../../lib/testing/wait-for.js";
import { type ChaosMesh, startChaosMesh } from "./chaos-mesh.js";
import { ackWaitMs, expectScenario, runScenario, slowStepRunningOn } from "./scenario.js";
import { putSlowChain } from "./workload.js";

const pg = await needPostgres();
/** Generous for a loaded 2-core machine; the figure itself is printed. */
const recoveryBoundMs = 20_000;

describe.skipIf(!pg)("chaos: mesh processes fail under load (shipped defaults)", () => {
  let nats: PrivateNatsServer;
  let mesh: ChaosMesh;
  beforeAll(async () => {
    nats = await startNatsServer();
    mesh = await startChaosMesh({ databaseUrl: pg!.url, natsUrl: nats.url });
    await putSlowChain(mesh);
  });
  afterAll(async () => {
    await mesh?.stop();
    await nats?.stop();
  });

  it("agent kill -9 mid-step: the step runs again elsewhere, its effect once", async () => {
    const r = await runScenario(mesh, {
      name: "agent-kill-9",
      async fault() {
        const [victim] = mesh.agentKeys("util");
        await slowStepRunningOn(mesh, victim!);
        await mesh.kill(victim!);
        const at = Date.now();
        await mesh.startAgent("util"); // as its supervisor would
        return at;
      },
    });
    // Agents are not on the submit path.
    expectScenario(r, { submitCodes: [], recoveryBoundMs });
    expect(r.audit.retriedSteps).toBeGreaterThan(0); // the kill hit a running step
  });

  it("agent SIGSTOP longer than the ack wait, then SIGCONT: no step runs twice, the agent is live again", async () => {
    const wait = await ackWaitMs(mesh, "util.sleep");
    const r = await runScenario(mesh, {
      name: "agent-sigstop",
      async fault() {
        const [victim] = mesh.agentKeys("util");
        await slowStepRunningOn(mesh, victim!);
        mesh.signal(victim!, "SIGSTOP");
        await sleep(wait + 5_000);
        mesh.signal(victim!, "SIGCONT");
        return Date.now();
      },
    });
    console.log(`agent-sigstop: stopped for ${wait + 5_000} ms (ack wait ${wait} ms)`);
    expectScenario(r, { submitCodes: [], recoveryBoundMs });
    expect(r.audit.retriedSteps).toBeGreaterThan(0); // the stop held a running step
  });

  it("one of two executors kill -9: the survivor finishes its goals", async () => {
    const r = await runScenario(mesh, {
      name: "executor-kill-9",
      async fault() {
        await mesh.kill("executor#1");
        return Date.now();
      },
    });
    // A call the dead replica held fails retryably; the client sends it again.
    expectScenario(r, { submitCodes: ["UNAVAILABLE", "DEADLINE_EXCEEDED"], recoveryBoundMs });
  });
});
