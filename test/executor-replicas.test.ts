/**
 * Two real executor replicas behind one address (a list, as
 * `AGENTMESH_EXECUTOR_ADDR=ip:port,ip:port` gives the gateway and every
 * client): one is stopped, and every goal submitted afterwards through the
 * same client is still accepted and finishes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { createLazyClient, type LazyClient } from "../lib/mesh/lazy-client.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { eventsOf, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("executor replicas behind one address", () => {
  let mesh: TestMesh;
  let lazy: LazyClient<typeof ExecutorService>;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      executors: 2,
      agents: [{ definition: utilAgent }],
    });
    const replicas = mesh.components.filter((c) => c.name === "executor");
    expect(replicas).toHaveLength(2);
    lazy = createLazyClient(
      ExecutorService,
      () => ({
        address: replicas.map((r) => r.address).join(","),
        spiffeId: mesh.runtime.spiffeId("executor"),
      }),
      await mesh.runtime.certs("cli"),
    );
  });
  afterAll(async () => {
    lazy?.close();
    await mesh?.stop();
  });

  const submitAndFinish = async (message: string) => {
    const { goal } = await lazy.client.submitGoal(
      { tenantId: mesh.tenantId, kind: "echo", input: { message } },
      { timeoutMs: 10_000 },
    );
    const events = await watchToEnd(lazy.client, mesh.tenantId, goal!.goalId, 30_000);
    return eventsOf(events, "finished")[0]?.status;
  };

  it("keeps accepting and finishing goals when one replica is stopped", async () => {
    for (let i = 0; i < 4; i++)
      expect(await submitAndFinish(`before ${i}`)).toBe(GoalStatus.SUCCEEDED);
    await mesh.components.find((c) => c.name === "executor")!.stop();
    for (let i = 0; i < 10; i++)
      expect(await submitAndFinish(`after ${i}`)).toBe(GoalStatus.SUCCEEDED);
  });
});
