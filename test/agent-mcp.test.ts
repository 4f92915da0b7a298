/**
 * The MCP bridge end to end: the real `@modelcontextprotocol/server-everything`
 * from node_modules over stdio, its tools offered as capabilities, jobs on the
 * bus calling them.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMcpAgent, type McpBridge, sideEffectOf } from "../agents/mcp.js";
import { type StepResult, StepResultStatus } from "../gen/agentmesh/v1/jobs_pb.js";
import { SideEffect } from "../gen/agentmesh/v1/registry_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { createInProcessBus } from "../lib/bus/in-process-bus.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import { stepJob, waitFor } from "../lib/bus/job-bus.contract.js";
import type { JobBus, Subscription } from "../lib/bus/job-bus.js";
import { needNats, runId } from "../lib/testing/infra.js";
import { agentCard, type RunningAgent, runAgent } from "../sdk/index.js";

const nats = await needNats();
const prefix = runId("tmcp");
const require = createRequire(import.meta.url);
const serverEntry = join(
  dirname(require.resolve("@modelcontextprotocol/server-everything/package.json")),
  "dist/index.js",
);

describe("MCP bridge to server-everything", () => {
  let bridge: McpBridge;
  let bus: JobBus;
  let agent: RunningAgent;
  let sub: Subscription;
  const results: StepResult[] = [];

  beforeAll(async () => {
    bridge = await createMcpAgent({
      server: "everything",
      command: process.execPath,
      args: [serverEntry, "stdio"],
    });
    // Real JetStream when it runs here, else the in-process bus: the bridge is what is under test.
    bus = nats
      ? await createJetStreamBus({ prefix, servers: nats.url, ackWaitMs: 5_000 })
      : createInProcessBus({ prefix });
    sub = await bus.consumeResults({ concurrency: 8, handler: (d) => void results.push(d.data) });
    agent = await runAgent(bridge.agent, { bus, handleSignals: false, drainGraceMs: 100 });
  });

  afterAll(async () => {
    await agent?.stop();
    await sub?.stop({ graceMs: 0 });
    await bus?.close({ graceMs: 0 });
    await bridge?.close();
    if (nats) {
      const nc = await connectNats(nats.url);
      const jsm = await jetstreamManager(nc);
      for (const s of Object.values(busNames(prefix).streams))
        await jsm.streams.delete(s).catch(() => false);
      await nc.close();
    }
  });

  const final = (attemptId: string) =>
    results.find((r) => r.attemptId === attemptId && r.status !== StepResultStatus.STARTED);

  it("offers every tool as mcp.everything.<tool> with the tool's input schema", () => {
    expect([...bridge.tools.keys()]).toEqual(
      expect.arrayContaining(["mcp.everything.echo", "mcp.everything.get-sum"]),
    );
    const card = agentCard(bridge.agent);
    expect(card.name).toBe("mcp-everything");
    const echo = card.skills.find((s) => s.capability === "mcp.everything.echo")!;
    expect(echo.inputSchema).toMatchObject({ required: ["message"] });
    // Its annotations (readOnlyHint) become the capability's declared side effect, a tool
    // named like it that the registry keeps and the executors enforce.
    expect(card.tools.find((t) => t.name === "mcp.everything.echo")).toMatchObject({
      sideEffect: SideEffect.READ_ONLY,
    });
    const tool = (annotations?: Tool["annotations"]) =>
      ({
        name: "t",
        inputSchema: { type: "object" },
        ...(annotations ? { annotations } : {}),
      }) as Tool;
    expect(sideEffectOf(tool())).toEqual({});
    expect(sideEffectOf(tool({ destructiveHint: false, idempotentHint: true }))).toEqual({
      sideEffect: "idempotent",
    });
    expect(sideEffectOf(tool({ title: "no hints" }))).toEqual({ sideEffect: "destructive" });
  });

  it("calls echo and get-sum through jobs on the bus", async () => {
    const echo = stepJob("mcp.everything.echo", { input: { message: "hello mesh" } });
    const sum = stepJob("mcp.everything.get-sum", { input: { a: 2, b: 3 } });
    await bus.publishJob(echo);
    await bus.publishJob(sum);
    await waitFor(() => final(echo.attemptId) !== undefined && final(sum.attemptId) !== undefined);
    const e = final(echo.attemptId)!;
    expect(e.status).toBe(StepResultStatus.SUCCEEDED);
    expect(toJson(ValueSchema, e.output!)).toEqual({
      content: [{ type: "text", text: "Echo: hello mesh" }],
    });
    const s = final(sum.attemptId)!;
    expect(s.status).toBe(StepResultStatus.SUCCEEDED);
    expect(JSON.stringify(toJson(ValueSchema, s.output!))).toContain("is 5");
  });

  it("fails a job whose input breaks the tool's schema before calling the tool", async () => {
    const bad = stepJob("mcp.everything.get-sum", { input: { a: "two" } });
    await bus.publishJob(bad);
    await waitFor(() => final(bad.attemptId) !== undefined);
    expect(final(bad.attemptId)!.error).toMatchObject({
      code: "INVALID_ARGUMENT",
      retryable: false,
    });
  });
});
