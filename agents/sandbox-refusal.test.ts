/**
 * Sandbox refusals reach the SIEM as OCSF API Activity failures with the
 * step's tenant, the refusing agent's identity and the goal's trace id: the
 * built-in shell, http and data agents run by `runAgent` on the in-process
 * bus, each job carrying its goal's `traceparent`, into the real file sink.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInProcessBus } from "../lib/bus/in-process-bus.js";
import { stepJob } from "../lib/bus/job-bus.contract.js";
import { captureSiemEvents, type SiemCapture } from "../lib/testing/siem-capture.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { runAgent } from "../sdk/agent/run-agent.js";
import { createDataAgent } from "./data.js";
import { createHttpAgent } from "./http.js";
import { createShellAgent } from "./shell.js";

interface OcsfLine {
  class_uid: number;
  status_id: number;
  api: { operation: string };
  actor: { user: { name: string } };
  metadata: { tenant_uid?: string; correlation_uid?: string; event_code: string };
  message: string;
  unmapped: Record<string, unknown>;
}

const trace = (n: number) => `4bf92f3577b34da6a3ce929d0e0e47${String(n).padStart(2, "0")}`;

describe("sandbox refusals as security events", () => {
  let siem: SiemCapture;
  beforeAll(async () => {
    siem = await captureSiemEvents();
  });
  afterAll(async () => {
    await siem?.close();
  });

  it("reports refused commands, arguments, addresses and JSONata over its limits; not a bad expression", async () => {
    const bus = createInProcessBus({ prefix: "sandbox-siem" });
    const settled: { attemptId: string; code: string }[] = [];
    await bus.consumeResults({
      handler: (d) => {
        if (d.data.status > 1) {
          settled.push({ attemptId: d.data.attemptId, code: d.data.error?.code ?? "" });
        }
      },
    });
    const agents = await Promise.all(
      [
        createShellAgent({ allowCommands: ["cat"] }),
        createHttpAgent({ allowHosts: ["169.254.169.254"] }),
        createDataAgent({ maxBytes: 100 }),
      ].map((agent) => runAgent(agent, { bus, handleSignals: false })),
    );
    const jobs: [string, JsonObject, string][] = [
      ["shell.exec", { command: "rm", args: ["-rf", "/"] }, "acme"],
      ["shell.exec", { command: "cat", args: ["/etc/shadow"] }, "acme"],
      ["http.fetch", { url: "http://169.254.169.254/latest/meta-data/" }, "globex"],
      ["data.transform", { expression: "s", data: { s: "x".repeat(200) } }, "globex"],
      // A user's mistake, not a sandbox refusal: no event.
      ["data.transform", { expression: "(((" }, "globex"],
    ];
    for (const [i, [capability, input, tenantId]] of jobs.entries()) {
      await bus.publishJob(stepJob(capability, { tenantId, goalId: `g${i}`, input }), {
        traceparent: `00-${trace(i)}-00f067aa0ba902b7-01`,
      });
    }
    await waitFor("every job settled", () => settled.length === jobs.length, 30_000);
    expect(settled.map((s) => s.code).sort()).toEqual(
      [
        "INVALID_ARGUMENT",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
      ].sort(),
    );
    for (const agent of agents) await agent.stop("shutdown");
    await bus.close();

    const events = await siem.events<OcsfLine>();
    const byGoal = new Map(events.map((e) => [e.unmapped.goalId, e]));
    expect(events).toHaveLength(4);
    for (const e of events) {
      expect(e).toMatchObject({
        class_uid: 6003,
        status_id: 2,
        metadata: { event_code: "sandbox.refusal" },
      });
    }
    expect(byGoal.get("g0")).toMatchObject({
      api: { operation: "shell.exec" },
      actor: { user: { name: "agent-shell" } },
      metadata: { tenant_uid: "acme", correlation_uid: trace(0) },
      unmapped: { command: "rm", code: "PERMISSION_DENIED" },
    });
    expect(byGoal.get("g1")?.message).toBe(
      'shell.exec refused by the shell sandbox: cat: path "/etc/shadow" must be relative to the job\'s working directory',
    );
    expect(byGoal.get("g1")?.metadata.correlation_uid).toBe(trace(1));
    expect(byGoal.get("g2")).toMatchObject({
      api: { operation: "http.fetch" },
      actor: { user: { name: "agent-http" } },
      metadata: { tenant_uid: "globex", correlation_uid: trace(2) },
      unmapped: { address: "169.254.169.254" },
    });
    expect(byGoal.get("g3")).toMatchObject({
      api: { operation: "data.transform" },
      actor: { user: { name: "agent-data" } },
      metadata: { tenant_uid: "globex", correlation_uid: trace(3) },
      unmapped: { code: "RESOURCE_EXHAUSTED", maxBytes: 100 },
    });
    // The shell's arguments stay out of the SIEM copy.
    expect(JSON.stringify(byGoal.get("g0"))).not.toContain("-rf");
  }, 60_000);
});
