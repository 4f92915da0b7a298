/**
 * One trace per goal: a goal submitted through the gateway with OTLP export
 * on (a real OTLP/HTTP JSON receiver on loopback) is one trace covering the
 * executor's SubmitGoal span, the child goal it starts, and the agents'
 * handler spans of both goals' jobs (children of the job's `traceparent`);
 * the goal and its child carry that trace id.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { startTracing, type Tracing } from "../lib/telemetry/tracing.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes?: { key: string; value: { stringValue?: string } }[];
}

describe.skipIf(!pg || !nats)("one trace per goal", () => {
  let f: GatewayFixture;
  let receiver: Server;
  let tracing: Tracing | undefined;
  const spans: OtlpSpan[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const rs of body.resourceSpans)
          for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    // As `agentmesh dev` does when OTEL_EXPORTER_OTLP_ENDPOINT is set (one process, one provider).
    tracing = await startTracing({
      serviceName: "agentmesh-test",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint },
    });
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
    const planner = await f.mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: "acme",
      playbook: {
        goalKind: "nested",
        description: "an echo, then a child goal of kind echo",
        strategies: [
          {
            name: "nested",
            outputStep: "child",
            steps: [
              { stepId: "first", name: "first", capability: "util.echo", input: { message: "a" } },
              {
                stepId: "child",
                name: "child",
                subGoal: { kind: "echo", input: { message: "b" } },
                dependsOn: ["first"],
              },
            ],
          },
        ],
      },
    });
  }, 60_000);
  afterAll(async () => {
    await f?.close();
    await tracing?.shutdown();
    await new Promise((r) => receiver?.close(r));
  });

  it("covers the submission, the child goal and the agents' handler spans", async () => {
    const mesh = createClient({ baseUrl: f.url, apiKey: f.keys.acmeWriter });
    const { goal } = await mesh.executor.submitGoal({ kind: "nested", input: {} });
    for await (const _ of mesh.executor.watchGoal({ goalId: goal!.goalId })) {
      // until it finishes
    }
    const { goal: done } = await mesh.executor.getGoal({ goalId: goal!.goalId });
    expect(done?.status).toBe(GoalStatus.SUCCEEDED);
    const traceId = done!.traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    // The child goal carries its parent's trace.
    const childId = done!.steps.find((s) => s.stepId === "child")?.childGoalId;
    expect(childId).toBeTruthy();
    const { goal: child } = await mesh.executor.getGoal({ goalId: childId! });
    expect(child?.traceId).toBe(traceId);

    await tracing!.shutdown(); // flushes every queued span to the receiver
    const inTrace = spans.filter((s) => s.traceId === traceId);
    const byId = new Map(inTrace.map((s) => [s.spanId, s]));
    const submit = inTrace.find(
      (s) => s.name.endsWith("ExecutorService/SubmitGoal") && byId.get(s.parentSpanId ?? ""),
    );
    expect(submit, "the executor's SubmitGoal span, under the gateway's call").toBeDefined();
    const handlers = inTrace.filter((s) => s.name === "handle util.echo");
    const goalOf = (s: OtlpSpan) =>
      s.attributes?.find((a) => a.key === "agentmesh.goal_id")?.value.stringValue;
    // Both goals' jobs ran in handler spans of this trace, each the child of the goal's span.
    expect(new Set(handlers.map(goalOf))).toEqual(new Set([goal!.goalId, childId]));
    for (const h of handlers) expect(h.parentSpanId).toBe(submit!.spanId);
  });
});
