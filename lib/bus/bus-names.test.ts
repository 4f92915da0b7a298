import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { registerBusMetrics } from "./bus-metrics.js";
import {
  busNames,
  isValidCapability,
  jobConsumerName,
  pinnedConsumerName,
  versionToken,
} from "./bus-names.js";
import { createInProcessBus } from "./in-process-bus.js";
import { stepJob } from "./job-bus.contract.js";

describe("bus names", () => {
  it("gives each agent version of a capability its own queue, apart from every capability's", () => {
    const n = busNames("agentmesh");
    expect(n.pinnedJobSubject("text.summarize", "2.1.0")).toBe(
      "agentmesh.jobs._v.2_1_0.text.summarize",
    );
    expect(n.pinnedOf("agentmesh.jobs._v.2_1_0.text.summarize")).toEqual({
      capability: "text.summarize",
      versionToken: "2_1_0",
    });
    // Not a capability's subject ("_v" is no capability word), so stats and DLQ names keep apart.
    expect(n.capabilityOf("agentmesh.jobs._v.2_1_0.text.summarize")).toBeUndefined();
    expect(isValidCapability("_v.2_1_0.text.summarize")).toBe(false);
    expect(n.pinnedOf("agentmesh.jobs.text.summarize")).toBeUndefined();
    expect(versionToken("2.0.0-rc.1+build.5")).toBe("2_0_0-rc_1__build_5");
    expect(versionToken("1.0.0+a.b")).not.toBe(versionToken("1.0.0-a.b"));
    expect(() => versionToken("2.0")).toThrow(/semver version/);
    expect(() => n.pinnedJobSubject("text.summarize", "latest")).toThrow(/semver version/);
    expect(pinnedConsumerName("text.summarize", "2.1.0")).toBe("jobs_text_summarize__v2_1_0");
  });

  it("derives subjects and streams from the prefix", () => {
    const n = busNames("agentmesh");
    expect(n.streams).toEqual({
      jobs: "AGENTMESH_JOBS",
      results: "AGENTMESH_RESULTS",
      events: "AGENTMESH_EVENTS",
      learning: "AGENTMESH_LEARNING",
      dlq: "AGENTMESH_DLQ",
      handBacks: "AGENTMESH_HANDBACKS",
    });
    expect(n.jobSubject("text.summarize")).toBe("agentmesh.jobs.text.summarize");
    expect(n.resultSubject("g1")).toBe("agentmesh.results.anonymous.g1");
    expect(n.resultSubject("g1", "agent-text")).toBe("agentmesh.results.agent-text.g1");
    expect(n.resultPublisherOf("agentmesh.results.agent-text.g1")).toBe("agent-text");
    expect(n.resultPublisherOf("agentmesh.results.g1")).toBeUndefined();
    expect(n.resultPublisherOf("agentmesh.jobs.agent-text.g1")).toBeUndefined();
    expect(() => n.resultSubject("g1", "a.b")).toThrow(/invalid publisher/);
    expect(n.eventSubject("acme", "g1")).toBe("agentmesh.events.acme.g1");
    expect(n.dlqSubject("text.summarize")).toBe("agentmesh.dlq.text.summarize");
    expect(n.cancelSubject("g1")).toBe("agentmesh.control.cancel.g1");
    expect(n.handBackSubject("text.summarize", 42)).toBe("agentmesh.handbacks.42.text.summarize");
    expect(n.capabilityOf("agentmesh.jobs.mcp.everything.echo")).toBe("mcp.everything.echo");
    expect(() => busNames("bad.prefix")).toThrow(/invalid bus prefix/);
  });

  it("sanitizes consumer names without collisions", () => {
    expect(jobConsumerName("text.summarize")).toBe("jobs_text_summarize");
    expect(jobConsumerName("a_b")).not.toBe(jobConsumerName("a.b"));
    expect(jobConsumerName("mcp.everything.get_sum")).toMatch(
      /^jobs_mcp_everything_get_sum_[0-9a-f]{8}$/,
    );
    expect(isValidCapability("mcp.everything.get-sum")).toBe(true);
    expect(isValidCapability("a.*")).toBe(false);
  });
});

describe("bus metrics", () => {
  it("exports depth and lag per capability at scrape time", async () => {
    const registry = new Registry();
    const bus = createInProcessBus({ prefix: "metrics" });
    registerBusMetrics(bus, registry);
    await bus.publishJob(stepJob("text.stats"));
    const text = await registry.metrics();
    expect(text).toContain('agentmesh_bus_queue_depth{capability="text.stats"} 1');
    expect(text).toContain('agentmesh_bus_consumer_lag{capability="text.stats"} 1');
    expect(text).toContain("agentmesh_bus_up 1");
    await bus.close();
    // A closed bus cannot publish: the gauge says so.
    expect(await registry.metrics()).toContain("agentmesh_bus_up 0");
  });

  it("leaves queues and dead letters to the process that owns them when told", async () => {
    const registry = new Registry();
    const bus = createInProcessBus({ prefix: "metrics" });
    registerBusMetrics(bus, registry, { queues: false });
    await bus.publishJob(stepJob("text.stats"));
    const text = await registry.metrics();
    expect(text).toContain("agentmesh_bus_up 1");
    expect(text).not.toContain('agentmesh_bus_queue_depth{capability="text.stats"}');
    await bus.close();
  });
});
