/**
 * What `runAgent` records per job in the registry it is given: queue wait from
 * dispatch, run time, and jobs settled by capability and outcome, with the
 * job's trace id as an exemplar when it carries a `traceparent`.
 */
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createInProcessBus } from "../../lib/bus/in-process-bus.js";
import { stepJob } from "../../lib/bus/job-bus.contract.js";
import { renderMetrics } from "../../lib/telemetry/exposition.js";
import { waitFor } from "../../lib/testing/wait-for.js";
import { defineAgent } from "./define-agent.js";
import { runAgent } from "./run-agent.js";

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";

const agent = defineAgent({
  name: "metered",
  version: "0.0.1",
  skills: {
    "test.ok": { description: "Succeeds.", handler: () => ({ ok: true }) },
    "test.fail": {
      description: "Fails.",
      handler: () => {
        throw new Error("boom");
      },
    },
  },
});

describe("runAgent metrics", () => {
  it("times queue wait and runs by tenant and capability and counts jobs by outcome", async () => {
    const bus = createInProcessBus({ prefix: "agent-metrics" });
    const registry = new Registry();
    const settled: string[] = [];
    await bus.consumeResults({
      handler: (d) => {
        if (d.data.status > 1) settled.push(d.data.attemptId);
      },
    });
    const timestampFromMs = (ms: number) => ({
      seconds: BigInt(Math.floor(ms / 1000)),
      nanos: (ms % 1000) * 1_000_000,
    });
    const running = await runAgent(agent, { bus, metrics: registry, handleSignals: false });
    await bus.publishJob(
      stepJob("test.ok", {
        // Exactly 2 s ago (whole seconds only would make it 2.0–2.99 s: half the time past 2.5).
        dispatchedAt: timestampFromMs(Date.now() - 2000),
      }),
      {
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
    );
    await bus.publishJob(stepJob("test.ok"));
    await bus.publishJob(stepJob("test.fail", { tenantId: "default" }));
    await waitFor("3 results", () => settled.length === 3);
    const text = await registry.metrics();
    expect(text).toContain(
      'agentmesh_agent_jobs_total{capability="test.ok",outcome="succeeded"} 2',
    );
    expect(text).toContain('agentmesh_agent_jobs_total{capability="test.fail",outcome="failed"} 1');
    expect(text).toContain(
      'agentmesh_job_queue_wait_seconds_count{tenant="other",capability="test.ok"} 2',
    );
    expect(text).toContain(
      'agentmesh_step_duration_seconds_count{tenant="default",capability="test.fail"} 1',
    );
    // The job dispatched 2 s ago waited at least 1 s; its bucket names its trace.
    expect(text).toContain(
      'agentmesh_job_queue_wait_seconds_bucket{le="1",tenant="other",capability="test.ok"} 1',
    );
    const om = await renderMetrics(registry, "application/openmetrics-text");
    expect(om.body).toMatch(
      new RegExp(
        `agentmesh_job_queue_wait_seconds_bucket\\{le="2.5",tenant="other",capability="test.ok"\\} 2 # \\{trace_id="${traceId}"\\}`,
      ),
    );
    await running.stop();
    await bus.close();
  });
});
