import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { settings } from "../config/settings.js";
import { renderMetrics } from "./exposition.js";
import { boundedLabel, tenantLabel } from "./label-guard.js";
import { goalSli, jobSli } from "./slis.js";

const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
const openMetricsAccept =
  "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3";

describe("tenant labels", () => {
  it("keep the configured tenants' names and fold every other tenant into `other`", () => {
    expect(settings.metricsTenants.read({})).toEqual(["default"]);
    const label = tenantLabel(
      settings.metricsTenants.read({ AGENTMESH_METRICS_TENANTS: "acme, globex" }),
    );
    expect(["acme", "globex", "initech", "default"].map(label)).toEqual([
      "acme",
      "globex",
      "other",
      "other",
    ]);
    const many = Array.from({ length: 101 }, (_, i) => `t${i}`).join(",");
    expect(() => settings.metricsTenants.read({ AGENTMESH_METRICS_TENANTS: many })).toThrow(
      /at most 100 tenants/,
    );
  });

  it("bound free-form values (goal kinds) to the first N seen", () => {
    const kind = boundedLabel(2);
    expect(["a", "b", "c", "a", "d"].map(kind)).toEqual(["a", "b", "other", "a", "other"]);
  });

  it("keep the series of 2 000 tenants to those named plus one", async () => {
    const registry = new Registry();
    const goals = goalSli(registry, { tenants: ["acme"] });
    for (let i = 0; i < 2_000; i++) {
      goals.finished({ tenantId: `t${i}`, kind: "echo", status: "succeeded", seconds: 0.2 });
    }
    goals.finished({ tenantId: "acme", kind: "echo", status: "failed", seconds: 0.2 });
    const text = await registry.metrics();
    const series = text.split("\n").filter((l) => l.startsWith("agentmesh_goals_finished_total{"));
    expect(series).toEqual([
      'agentmesh_goals_finished_total{tenant="other",kind="echo",status="succeeded"} 2000',
      'agentmesh_goals_finished_total{tenant="acme",kind="echo",status="failed"} 1',
    ]);
  });
});

describe("/metrics exposition", () => {
  it("carries trace ids as exemplars in OpenMetrics, and the plain text format stays as it was", async () => {
    const registry = new Registry();
    goalSli(registry, { tenants: ["acme"] }).finished({
      tenantId: "acme",
      kind: "echo",
      status: "succeeded",
      seconds: 0.3,
      traceId,
    });
    jobSli(registry, { tenants: ["acme"] }).taken({
      tenantId: "acme",
      capability: "util.echo",
      waitSeconds: 0.004,
      traceId,
    });

    const om = await renderMetrics(registry, openMetricsAccept);
    expect(om.contentType).toMatch(/^application\/openmetrics-text; version=1.0.0/);
    expect(om.body.endsWith("# EOF\n")).toBe(true);
    // A counter family is named without `_total`; its sample carries it.
    expect(om.body).toContain("# TYPE agentmesh_goals_finished counter");
    expect(om.body).toContain(
      'agentmesh_goals_finished_total{tenant="acme",kind="echo",status="succeeded"} 1',
    );
    expect(om.body).toMatch(
      new RegExp(
        `agentmesh_goal_duration_seconds_bucket\\{le="0.5",tenant="acme",kind="echo"\\} 1 # \\{trace_id="${traceId}"\\} 0.3 \\d+`,
      ),
    );
    expect(om.body).toMatch(
      new RegExp(
        `agentmesh_job_queue_wait_seconds_bucket\\{le="0.005".*# \\{trace_id="${traceId}"\\} 0.004`,
      ),
    );

    const text = await renderMetrics(registry, "text/plain");
    expect(text.contentType).toBe(registry.contentType);
    expect(text.body).toContain("# TYPE agentmesh_goals_finished_total counter");
    expect(text.body).not.toContain("trace_id");
    // Rendering OpenMetrics did not rename anything in the registry.
    expect(await renderMetrics(registry, undefined)).toEqual(text);
  });

  it("leaves out an exemplar whose trace id is not one", async () => {
    const registry = new Registry();
    goalSli(registry, { tenants: [] }).finished({
      tenantId: "acme",
      kind: "echo",
      status: "failed",
      seconds: 1,
      traceId: "not-a-trace",
    });
    const om = await renderMetrics(registry, openMetricsAccept);
    expect(om.body).not.toContain("# {");
    expect(om.body).toContain(
      'agentmesh_goals_finished_total{tenant="other",kind="echo",status="failed"} 1',
    );
  });
});
