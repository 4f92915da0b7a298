/**
 * The MCP server endpoint end to end with the `@modelcontextprotocol/sdk`
 * client over Streamable HTTP: the tenant's goal kinds as tools with their
 * schemas, a tool call that runs a goal with progress notifications from its
 * events, and the refusals (no credentials; the policy, audited) as MCP
 * errors; single capabilities as tools (`capability.<name>`) only for a role
 * granted RunCapability. Real mesh behind the gateway.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("gateway MCP endpoint", () => {
  let f: GatewayFixture;
  const clients: Client[] = [];
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await f?.close();
  });

  async function connect(apiKey: string | undefined): Promise<Client> {
    const client = new Client({ name: "gateway-mcp-test", version: "1.0.0" });
    const transport = new StreamableHTTPClientTransport(new URL(`${f.url}/mcp`), {
      requestInit: { headers: apiKey ? { "x-api-key": apiKey } : {} },
    });
    await client.connect(transport);
    clients.push(client);
    return client;
  }

  it("lists the tenant's goal kinds as tools with their input schemas", async () => {
    const client = await connect(f.keys.acmeWriter);
    const { tools } = await client.listTools();
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect([...byName.keys()]).toEqual(expect.arrayContaining(["echo", "wait", diamondKind]));
    expect(byName.get("wait")?.inputSchema).toMatchObject({
      type: "object",
      required: ["ms"],
      properties: { ms: { type: "integer" } },
    });
    // Another tenant's list is its own (globex has its own diamond playbook).
    const globex = await connect(f.keys.globexWriter);
    expect((await globex.listTools()).tools.map((t) => t.name)).toContain(diamondKind);
  });

  it("calls a tool: runs the goal, reports its events as progress, returns its output", async () => {
    const client = await connect(f.keys.acmeWriter);
    const progress: { progress: number; message?: string }[] = [];
    const result = await client.callTool(
      { name: diamondKind, arguments: { topic: "tides" } },
      undefined,
      {
        onprogress: (p) => progress.push(p),
      },
    );
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ message: "report done" });
    expect(JSON.parse((result.content as { text: string }[])[0]!.text)).toMatchObject({
      message: "report done",
    });
    expect(progress.length).toBeGreaterThanOrEqual(7);
    expect(progress.map((p) => p.progress)).toEqual(progress.map((_, i) => i + 1));
    expect(progress.map((p) => p.message)).toEqual(
      expect.arrayContaining(["submitted", "stepSucceeded report", "finished"]),
    );
  });

  it("refuses a client without credentials, and a call the policy denies with an audited MCP error", async () => {
    await expect(connect(undefined)).rejects.toThrow(/401|UNAUTHENTICATED|missing credentials/i);

    const reader = await connect(f.keys.acmeReader);
    expect((await reader.listTools()).tools.length).toBeGreaterThan(0);
    const denied = await reader.callTool({ name: "echo", arguments: { message: "no" } }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(denied).toBeInstanceOf(McpError);
    expect((denied as McpError).code).toBe(-32107);
    expect((denied as McpError).message).toMatch(
      /may not call agentmesh.v1.ExecutorService\/SubmitGoal/,
    );
    await waitFor(
      "the denial in the audit log",
      async () =>
        (await f.store.audit.list({ tenantId: "acme", limit: 1000 })).some(
          (e) =>
            e.action === "policy.denied" &&
            e.resource === "/agentmesh.v1.ExecutorService/SubmitGoal" &&
            String((e.details as { principal?: string }).principal).includes("goals.read") ===
              false,
        ),
      5_000,
    );
  });

  it("lists and calls single capabilities only for a role granted RunCapability; refuses others with an audited MCP error", async () => {
    // goals.write (the default writer) runs playbooks, not capabilities alone.
    const writer = await connect(f.keys.acmeWriter);
    const writerTools = (await writer.listTools()).tools.map((t) => t.name);
    expect(writerTools).toContain("echo");
    expect(writerTools.filter((n) => n.startsWith("capability."))).toEqual([]);
    const denied = await writer
      .callTool({ name: "capability.text.stats", arguments: { text: "Hi there." } })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(denied).toBeInstanceOf(McpError);
    expect((denied as McpError).code).toBe(-32107);
    expect((denied as McpError).message).toMatch(
      /may not run the single capability text\.stats .*RunCapability/,
    );
    await waitFor(
      "the capability denial in the audit log",
      async () =>
        (await f.store.audit.list({ tenantId: "acme", limit: 1000 })).some(
          (e) =>
            e.action === "policy.denied" &&
            /single capability text\.stats/.test(JSON.stringify(e.details)),
        ),
      5_000,
    );

    const runner = await connect(await f.key("acme", ["capabilities.run"]));
    const { tools } = await runner.listTools();
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect(byName.has("echo")).toBe(true);
    expect(byName.get("capability.text.stats")).toMatchObject({
      description: expect.stringMatching(/Counts characters/),
      inputSchema: { type: "object", required: ["text"] },
      annotations: { readOnlyHint: true, idempotentHint: true, destructiveHint: false },
    });
    expect([...byName.keys()]).toEqual(
      expect.arrayContaining(["capability.util.echo", "capability.text.summarize"]),
    );

    const stats = await runner.callTool({
      name: "capability.text.stats",
      arguments: { text: "One two three. Four five." },
    });
    expect(stats.isError).toBeFalsy();
    expect(stats.structuredContent).toMatchObject({ words: 5, sentences: 2 });
    // The input reaches the agent as given: no template is read in it.
    const dollar = "$";
    const literal = `${dollar}{input.message} and ${dollar}{steps.x.output}`;
    const echoed = await runner.callTool({
      name: "capability.util.echo",
      arguments: { message: literal },
    });
    expect(echoed.structuredContent).toEqual({ message: literal });
    // The skill's input schema holds like a playbook's.
    const bad = await runner.callTool({ name: "capability.text.stats", arguments: {} }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(bad).toBeInstanceOf(McpError);
    expect((bad as McpError).message).toMatch(/text/);
    // No playbook can take a capability's kind.
    const planner = await f.mesh.clientAs(PlannerService, "planner", "cli");
    await expect(
      planner.putPlaybook({
        tenantId: "acme",
        playbook: {
          goalKind: "capability.text.stats",
          strategies: [{ name: "s", steps: [{ stepId: "a", capability: "util.echo" }] }],
        },
      }),
    ).rejects.toThrow(/run one capability alone/);
  });
});
