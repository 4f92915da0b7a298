/**
 * The contract's `buf.validate` rules, enforced at both doors: through the
 * gateway (Connect JSON, as any HTTP client sends it) and on the services'
 * own gRPC ports (mTLS, as an internal caller or a generated SDK sends it).
 * Each failing example is INVALID_ARGUMENT naming the field's path, and a
 * refused submission stores nothing.
 */
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publicMethods } from "../gateway/public-api.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { ruleExamples } from "../lib/testing/contract-examples.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("contract validation", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(() => f?.close());

  const goalCount = async () =>
    (await f.store.tenant("acme").goals.list({ pageSize: 500 })).goals.length;

  const post = async (key: string, path: string, body: unknown) => {
    const res = await fetch(`${f.url}/agentmesh.v1.${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { code?: string; message?: string };
  };

  const step = (capability: string) => ({ stepId: "a", name: "a", capability });
  // [what, key, method, body, field path]
  const viaGateway: [string, () => string, string, unknown, string][] = [
    [
      "goal kind",
      () => f.keys.acmeWriter,
      "ExecutorService/SubmitGoal",
      { kind: "Text.Upper" },
      "kind",
    ],
    [
      "tenant id",
      () => f.keys.acmeWriter,
      "ExecutorService/SubmitGoal",
      { tenantId: "Acme", kind: "echo" },
      "tenant_id",
    ],
    [
      "size",
      () => f.keys.acmeWriter,
      "ExecutorService/SubmitGoal",
      { kind: "echo", idempotencyKey: "k".repeat(257) },
      "idempotency_key",
    ],
    ["required id", () => f.keys.acmeReader, "ExecutorService/GetGoal", { goalId: "" }, "goal_id"],
    [
      "capability filter",
      () => f.keys.acmeReader,
      "RegistryService/ListAgents",
      { capability: "Text.Upper" },
      "capability",
    ],
    ["required message", () => f.keys.acmeAdmin, "PlannerService/PutPlaybook", {}, "playbook"],
    [
      "capability in a playbook",
      () => f.keys.acmeAdmin,
      "PlannerService/PutPlaybook",
      { playbook: { goalKind: "shout", strategies: [{ name: "s", steps: [step("Text.Upper")] }] } },
      "playbook.strategies[0].steps[0].capability",
    ],
    [
      "tenant to create",
      () => f.keys.admin,
      "AdminService/CreateTenant",
      { tenant: { tenantId: "Bad_Tenant" } },
      "tenant.tenant_id",
    ],
  ];

  it.each(viaGateway)(
    "gateway refuses a bad %s with INVALID_ARGUMENT naming the field",
    async (_, key, path, body, field) => {
      const before = await goalCount();
      const res = await post(key(), path, body);
      expect(res.code).toBe("invalid_argument");
      expect(res.message).toContain(`${field}: `);
      expect(await goalCount()).toBe(before);
    },
  );

  it("a valid submission through the gateway still works", async () => {
    const res = await post(f.keys.acmeWriter, "ExecutorService/SubmitGoal", {
      kind: "echo",
      input: { message: "hi" },
    });
    expect(res.code).toBeUndefined();
  });

  /** Calls `method` with `message` (reading a server stream to its end); resolves to the error. */
  const callFor = async (client: unknown, method: DescMethod, message: Message) => {
    const call = (client as Record<string, (m: Message, o?: unknown) => unknown>)[
      method.localName
    ]!;
    try {
      const res = call(message, { headers: { authorization: `Bearer ${f.keys.admin}` } });
      if (method.methodKind === "server_streaming") {
        for await (const _ of res as AsyncIterable<unknown>) break;
      } else await res;
    } catch (err) {
      // A Connect client throws ConnectError, the mesh's gRPC client MeshError.
      if (err instanceof ConnectError) return { code: err.code as number, message: err.rawMessage };
      const e = MeshError.from(err);
      return { code: e.code as number, message: e.message };
    }
    return undefined;
  };

  it("every rule of every public request is enforced at the gateway (Connect), naming the field", async () => {
    const transport = createConnectTransport({ baseUrl: f.url, httpVersion: "1.1" });
    const clients = new Map<DescService, unknown>();
    let checked = 0;
    for (const { method } of publicMethods()) {
      if (!clients.has(method.parent))
        clients.set(method.parent, createClient(method.parent, transport));
      for (const { field, rule, message } of ruleExamples(method.input)) {
        const err = await callFor(clients.get(method.parent), method, message);
        const where = `${method.parent.name}/${method.name} ${field.name} ${rule}`;
        expect(err?.code, where).toBe(Code.InvalidArgument);
        expect(err?.message, where).toContain(`${field.name}: `);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  }, 60_000);

  it("every rule of every service request is enforced on the service's gRPC port, naming the field", async () => {
    const services = [
      [ExecutorService, "executor"],
      [RegistryService, "registry"],
      [PlannerService, "planner"],
      [LearningService, "learning"],
    ] as const;
    let checked = 0;
    for (const [service, component] of services) {
      const client = await f.mesh.clientAs(service as DescService, component, "gateway");
      for (const method of service.methods) {
        for (const { field, rule, message } of ruleExamples(method.input)) {
          const err = await callFor(client, method, message);
          const where = `${service.name}/${method.name} ${field.name} ${rule}`;
          expect(err?.code, where).toBe(Code.InvalidArgument);
          expect(err?.message, where).toContain(`${field.name}: `);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(50);
  }, 60_000);

  it("the executor's own gRPC port refuses a bad goal kind and stores nothing", async () => {
    const executor = await f.mesh.clientAs(ExecutorService, "executor", "gateway");
    const before = await goalCount();
    const err = await executor
      .submitGoal({ tenantId: "acme", kind: "Text.Upper" })
      .catch((e: unknown) => MeshError.from(e));
    expect(err).toBeInstanceOf(MeshError);
    expect((err as MeshError).code).toBe(Code.InvalidArgument);
    expect((err as MeshError).message).toMatch(/kind: does not match regex/);
    expect(await goalCount()).toBe(before);
  });

  // RegisterAgent is internal only: an agent calls it over mTLS.
  const card = (name: string, capability: string) => ({
    card: { name, version: "1.0.0", skills: [{ capability }] },
  });
  it.each([
    ["capability", card("shout", "Text.Upper"), "card.skills[0].capability"],
    ["agent name", card("Shout", "text.shout"), "card.name"],
    ["required card", {}, "card"],
  ])(
    "the registry's gRPC port refuses a bad %s with INVALID_ARGUMENT naming the field",
    async (_, request, field) => {
      const registry = await f.mesh.clientAs(RegistryService, "registry", "agent-test");
      const err = await registry
        .registerAgent(request as never)
        .catch((e: unknown) => MeshError.from(e));
      expect(err).toBeInstanceOf(MeshError);
      expect((err as MeshError).code).toBe(Code.InvalidArgument);
      expect((err as MeshError).message).toContain(`${field}: `);
    },
  );

  it("a heartbeat without an agent id is refused on the registry's port", async () => {
    const registry = await f.mesh.clientAs(RegistryService, "registry", "agent-test");
    const err = await registry
      .heartbeat(create(RegistryService.method.heartbeat.input, {}))
      .catch((e: unknown) => MeshError.from(e));
    expect((err as MeshError).code).toBe(Code.InvalidArgument);
    expect((err as MeshError).message).toContain("agent_id: ");
  });
});
