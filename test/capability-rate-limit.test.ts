/**
 * A rate limit set on a capability holds across two executor replicas
 * sharing PostgreSQL: an agent declares `test.ping` limited to 4 dispatches a
 * second with a burst of 2 (`rateLimit` on its skill, registered as the tool
 * named like the capability); 16 goals submitted at once, half to each
 * replica, all succeed (over the limit a step is delayed, not failed), and the
 * dispatches actually published stay within the limit in every window: one
 * bucket for the mesh, not one per replica (two would allow twice the rate).
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService, type GoalEvent } from "../gen/agentmesh/v1/executor_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { createLazyClient, type LazyClient } from "../lib/mesh/lazy-client.js";
import { eventsOf, watchToEnd } from "../lib/testing/goals.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { defineAgent } from "../sdk/agent/define-agent.js";

const pg = await needPostgres();
const nats = await needNats();

const perSecond = 4;
const burst = 2;
const goals = 16;

const pingAgent = defineAgent({
  name: "test",
  version: "1.0.0",
  skills: {
    "test.ping": {
      description: "Answers pong; limited per tenant across the mesh.",
      rateLimit: { perSecond, burst },
      sideEffect: "read_only",
      handler: () => ({ pong: true }),
    },
  },
});

describe.skipIf(!pg || !nats)("a capability's rate limit across executor replicas", () => {
  let mesh: TestMesh;
  const replicas: LazyClient<typeof ExecutorService>[] = [];
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      executors: 2,
      agents: [{ definition: pingAgent }],
    });
    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "ping",
        description: "one limited step",
        strategies: [
          {
            name: "ping",
            outputStep: "ping",
            steps: [{ stepId: "ping", name: "ping", capability: "test.ping", input: {} }],
          },
        ],
      },
    });
    const certs = await mesh.runtime.certs("cli");
    for (const r of mesh.components.filter((c) => c.name === "executor")) {
      replicas.push(
        createLazyClient(
          ExecutorService,
          () => ({ address: r.address, spiffeId: mesh.runtime.spiffeId("executor") }),
          certs,
        ),
      );
    }
    expect(replicas).toHaveLength(2);
  }, 60_000);
  afterAll(async () => {
    for (const r of replicas) r.close();
    await mesh?.stop();
  });

  it("holds per tenant and capability across both replicas; steps over it wait their turn", async () => {
    // The executors read tool metadata at most every 2 s: let the agent's registration reach them.
    await new Promise((r) => setTimeout(r, 2_500));
    const started = Date.now();
    const finished = await Promise.all(
      Array.from({ length: goals }, async (_, i) => {
        const executor = replicas[i % 2]!.client;
        const { goal } = await executor.submitGoal({
          tenantId: mesh.tenantId,
          kind: "ping",
          input: { i },
        });
        return watchToEnd(executor, mesh.tenantId, goal!.goalId, 60_000);
      }),
    );
    const elapsedS = (Date.now() - started) / 1000;
    for (const events of finished) {
      expect(eventsOf(events, "finished")[0]?.status).toBe(GoalStatus.SUCCEEDED);
    }
    // When each goal's step was admitted: its reserved turn (held back), else its first dispatch.
    const admitted = finished.map(turnMs).sort((a, b) => a - b);
    // When it was published: the dispatch of its last attempt (its turn, plus the ticker's lateness).
    const published = finished.map(lastDispatchMs).sort((a, b) => a - b);
    const limited = finished.filter((events) =>
      eventsOf(events, "stepFailed").some((f) => f.error?.code === "RATE_LIMITED" && f.willRetry),
    ).length;
    const spanS = (published.at(-1)! - published[0]!) / 1000;
    const maxInTwoSeconds = Math.max(
      ...published.map((t) => published.filter((u) => u >= t && u < t + 2000).length),
    );
    console.log(
      JSON.stringify({
        goals,
        limit: { perSecond, burst },
        heldBack: limited,
        publishedSpanS: Number(spanS.toFixed(2)),
        admittedPerS: Number(((goals - burst) / spanS).toFixed(2)),
        maxPublishedInTwoSeconds: maxInTwoSeconds,
        elapsedS,
        turnsMs: admitted.map((t) => t - admitted[0]!),
        publishedMs: published.map((t) => t - published[0]!),
      }),
    );
    // The turns handed out keep the bucket: at most burst + w × rate in any window of w seconds
    // (1 ms of slack per turn for rounding).
    expect(excessOver(admitted, 0.004)).toBeLessThanOrEqual(0);
    // What was published keeps it too, give or take one late publish (the ticker on a loaded
    // machine) meeting the next one on time.
    expect(maxInTwoSeconds).toBeLessThanOrEqual(burst + 2 * perSecond + 1);
    expect(spanS).toBeGreaterThanOrEqual(((goals - burst) / perSecond) * 0.9);
    expect(limited).toBeGreaterThanOrEqual(goals - burst - 2);
  }, 120_000);
});

/** Dispatches beyond burst + w × rate in the worst window of w seconds, less `slack` per dispatch. */
function excessOver(times: number[], slack: number): number {
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < times.length; i++) {
    for (let j = i; j < times.length; j++) {
      const w = (times[j]! - times[i]!) / 1000;
      worst = Math.max(worst, j - i + 1 - (burst + w * perSecond) - slack * (j - i));
    }
  }
  return worst;
}

function turnMs(events: GoalEvent[]): number {
  const held = eventsOf(events, "stepFailed").find((f) => f.error?.code === "RATE_LIMITED");
  const turn = held?.error?.details?.notBeforeMs;
  if (typeof turn === "number") return turn;
  return timestampMs(events.find((e) => e.kind.case === "stepDispatched")!.time!);
}

function lastDispatchMs(events: GoalEvent[]): number {
  const dispatched = events.filter((e) => e.kind.case === "stepDispatched");
  return timestampMs(dispatched.at(-1)!.time!);
}
