/**
 * A step whose handler keeps failing ends with the handler's own error after its
 * attempts, on time: the real executor, planner and registry, the shipped
 * `flaky-demo` playbook (4 attempts, 10 s timeout, 100 ms backoff doubling) and
 * the util agent on JetStream with the default max deliveries. Each attempt runs
 * the handler once; no attempt is retried by the bus beside the next one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { eventsOf, watchToEnd } from "./support/goals.js";
import { startTestMesh, type TestMesh } from "./support/mesh.js";

const pg = await needPostgres();
const nats = await needNats();
const attempts = 4;
const stepTimeoutMs = 10_000; // flaky-demo's

describe.skipIf(!pg || !nats)("a handler that keeps failing (flaky-demo, failTimes 8)", () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      agents: [{ definition: utilAgent }],
    });
  });
  afterAll(() => mesh?.stop());

  it("fails after its attempts with the handler's last error, well within attempts × timeout", async () => {
    const t0 = Date.now();
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "flaky-demo",
      input: { failTimes: 8 },
    });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    const tookMs = Date.now() - t0;
    const finished = eventsOf(events, "finished")[0]!;
    expect(finished.status).toBe(GoalStatus.FAILED);
    expect(finished.error?.code).toBe("FLAKY");
    // The handler's message of its last run: the 4th try, each attempt ran it once.
    expect(finished.error?.message).toContain("(try 4 of 8 failing)");
    const failed = eventsOf(events, "stepFailed");
    expect(failed.map((f) => f.error?.code)).toEqual(Array(attempts).fill("FLAKY"));
    expect(failed.map((f) => f.willRetry)).toEqual([true, true, true, false]);
    expect(eventsOf(events, "stepDispatched")).toHaveLength(attempts);
    console.log(
      `retries: flaky-demo failTimes 8 failed with FLAKY after ${attempts} runs in ${tookMs} ms`,
    );
    // Backoffs only (100 + 200 + 400 ms) plus round trips; far below one step timeout.
    expect(tookMs).toBeLessThan(stepTimeoutMs);
  });
});
