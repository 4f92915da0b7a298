/**
 * The job bus and SubmitGoal while NATS is away, on a NATS server of our own
 * (killed with SIGKILL and restarted on its JetStream store; never the shared
 * one): a publish fails at once with UNAVAILABLE instead of waiting for a
 * PubAck that cannot come; SubmitGoal answers UNAVAILABLE fast and stores
 * nothing; a publish allowed to wait goes through after the restart, and the
 * refused submission, sent again, runs to the end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import { stepJob } from "../lib/bus/job-bus.contract.js";
import type { JobBus } from "../lib/bus/job-bus.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { needPostgres, runId } from "../lib/testing/infra.js";
import { type PrivateNatsServer, startNatsServer } from "../lib/testing/nats-server.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { eventsOf, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();

const down = (bus: JobBus) => {
  try {
    bus.checkAvailable();
    return false;
  } catch (err) {
    return MeshError.from(err).code === Code.Unavailable;
  }
};

describe.skipIf(!pg)("NATS outage: fail fast, store nothing, recover", () => {
  let nats: PrivateNatsServer;
  let mesh: TestMesh;
  let bus: JobBus;
  beforeAll(async () => {
    nats = await startNatsServer();
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats.url,
      agents: [{ definition: utilAgent }],
    });
    bus = await createJetStreamBus({ servers: nats.url, prefix: runId("outage") });
  });
  afterAll(async () => {
    await bus?.close({ graceMs: 0 });
    await mesh?.stop();
    await nats?.stop();
  });

  it("publish and SubmitGoal answer UNAVAILABLE at once; after the restart both go through", async () => {
    const submit = {
      tenantId: mesh.tenantId,
      kind: "echo",
      input: { message: "after the outage" },
      idempotencyKey: runId("k"),
    };
    await nats.kill();
    await waitFor("the buses to see NATS gone", () => down(bus) && down(mesh.runtime.bus), 10_000);

    let t0 = Date.now();
    const refused = await bus.publishJob(stepJob("test.outage")).catch((e: unknown) => e);
    expect(MeshError.from(refused).code).toBe(Code.Unavailable);
    expect(Date.now() - t0).toBeLessThan(500);

    const patient = bus.publishJob(stepJob("test.outage"), { waitForConnectionMs: 30_000 });

    t0 = Date.now();
    const rejected = await mesh.executor.submitGoal(submit).catch((e: unknown) => e);
    expect(MeshError.from(rejected).code).toBe(Code.Unavailable);
    expect(Date.now() - t0).toBeLessThan(1_500);
    const { goals } = await mesh.executor.listGoals({ tenantId: mesh.tenantId, kind: "echo" });
    expect(goals.filter((g) => g.idempotencyKey === submit.idempotencyKey)).toEqual([]);

    await nats.start();
    expect((await patient).seq).toBeGreaterThan(0);
    await waitFor("the mesh's bus to reconnect", () => !down(mesh.runtime.bus), 15_000);
    const { goal, created } = await mesh.executor.submitGoal(submit);
    expect(created).toBe(true);
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);

    // Every consumer pulls again within seconds of the restart: a consumer whose
    // first look after the reconnect failed used to wait its whole 30 s pull expiry
    // (nats.js backs off by `expires`), so goals crawled for half a minute.
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      const { goal: g } = await mesh.executor.submitGoal({ ...submit, idempotencyKey: runId("k") });
      const done = await watchToEnd(mesh.executor, mesh.tenantId, g!.goalId);
      expect(eventsOf(done, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
      latencies.push(Date.now() - t);
    }
    console.log(`goal latency after the NATS restart (ms): ${latencies.join(" ")}`);
    expect(Math.max(...latencies)).toBeLessThan(8_000);
  });
});
