/**
 * The authorization matrix over real mTLS sockets: a mesh server with the
 * committed compiled policy as its authorizer, callers holding real
 * certificates from a throwaway CA, the gateway delegating principals in
 * metadata. An allowed call reaches the (absent) handler and comes back
 * UNIMPLEMENTED; a denied one is PERMISSION_DENIED with the policy's reason.
 * The full method × caller matrix runs at the authorizer level in
 * lib/policy/authorizer.test.ts; this is the subset that proves the wiring.
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminService } from "../gen/agentmesh/v1/admin_pb.js";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { type RegisterAgentRequest, RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { Code, isMeshError } from "../lib/errors/mesh-error.js";
import { createPolicyAuthorizer } from "../lib/policy/authorizer.js";
import { openPolicyEngine, type PolicyEngine } from "../lib/policy/engine.js";
import { committedBundlePath, principal, sampleRequest } from "../lib/policy/testing.js";
import {
  type CallOptions,
  createChannel,
  createClient,
  type MeshChannel,
} from "../lib/rpc/client.js";
import { createServer, type MeshServer } from "../lib/rpc/server.js";
import { createTestPki, type TestPki } from "../lib/rpc/testing.js";
import { createMeshMetrics } from "../lib/telemetry/metrics.js";

const methods = [
  ExecutorService.method.submitGoal,
  ExecutorService.method.getGoal,
  ExecutorService.method.watchGoal,
  RegistryService.method.registerAgent,
  RegistryService.method.findAgents,
  AdminService.method.createTenant,
] as const;

type Row = [submit: 0 | 1, get: 0 | 1, watch: 0 | 1, register: 0 | 1, find: 0 | 1, tenant: 0 | 1];
const matrix: { label: string; name: string; principal?: Principal; allowed: Row }[] = [
  { label: "executor", name: "executor", allowed: [1, 1, 1, 0, 1, 0] },
  { label: "planner", name: "planner", allowed: [0, 0, 0, 0, 1, 0] },
  { label: "agent-text", name: "agent-text", allowed: [0, 0, 0, 1, 1, 0] },
  {
    label: "gateway + acme goals.write",
    name: "gateway",
    principal: principal("acme", "wes", ["goals.write"]),
    allowed: [1, 1, 1, 0, 1, 0],
  },
  {
    label: "gateway + globex goals.write",
    name: "gateway",
    principal: principal("globex", "gus", ["goals.write"]),
    allowed: [0, 0, 0, 0, 1, 0],
  },
  {
    label: "gateway + platform.admin",
    name: "gateway",
    principal: principal("ops", "root", ["platform.admin"]),
    allowed: [1, 1, 1, 1, 1, 1],
  },
  { label: "gateway without principal", name: "gateway", allowed: [0, 0, 0, 0, 0, 0] },
  { label: "unknown SPIFFE ID", name: "intruder", allowed: [0, 0, 0, 0, 0, 0] },
  { label: "cli", name: "cli", allowed: [1, 1, 1, 1, 1, 1] },
];

let pki: TestPki;
let engine: PolicyEngine;
let server: MeshServer;
const channels: MeshChannel[] = [];

beforeAll(async () => {
  pki = await createTestPki(["registry", ...new Set(matrix.map((r) => r.name))]);
  engine = await openPolicyEngine({ path: committedBundlePath, watch: false });
  server = createServer({
    certs: await pki.watch("registry"),
    authorizer: createPolicyAuthorizer(engine),
    metrics: createMeshMetrics(),
  });
  // No handlers: an authorized call ends UNIMPLEMENTED, after the policy said yes.
  server.add(ExecutorService, {}).add(RegistryService, {}).add(AdminService, {});
  await server.listen();
});

afterAll(async () => {
  for (const c of channels) c.close();
  await server?.shutdown(100);
  await engine?.close();
  await pki?.cleanup();
});

type AnyClient = Record<
  string,
  (req: Message, o?: CallOptions) => Promise<unknown> | AsyncIterable<unknown>
>;

/**
 * The policy's sample request, completed where the contract wants more than the
 * policy reads (an agent card's name and version), so an allowed call passes
 * validation and reaches the (absent) handler.
 */
function validSample(method: DescMethod): Message {
  const request = sampleRequest(method);
  if (method === RegistryService.method.registerAgent) {
    const { card } = request as RegisterAgentRequest;
    if (card) Object.assign(card, { name: "text", version: "1.0.0" });
  }
  return request;
}

/** The status code a call ends with, and its message. */
async function outcome(
  client: AnyClient,
  method: DescMethod,
  options: CallOptions,
): Promise<{ code: Code; message: string }> {
  try {
    const result = client[method.localName]!(validSample(method), options);
    if (Symbol.asyncIterator in (result as object)) {
      for await (const _ of result as AsyncIterable<unknown>) {
        // drain
      }
    } else {
      await result;
    }
    return { code: Code.Ok, message: "" };
  } catch (err) {
    if (!isMeshError(err)) throw err;
    return { code: err.code, message: err.message };
  }
}

describe("policy over mTLS: method × caller", () => {
  for (const row of matrix) {
    it(row.label, async () => {
      const channel = createChannel({
        address: server.address,
        certs: await pki.watch(row.name),
        server: pki.id("registry"),
      });
      channels.push(channel);
      const clients = new Map<string, AnyClient>(
        [ExecutorService, RegistryService, AdminService].map((s) => [
          s.typeName,
          createClient(s, channel) as unknown as AnyClient,
        ]),
      );
      const got: string[] = [];
      const want: string[] = [];
      for (const [i, method] of methods.entries()) {
        const client = clients.get(method.parent.typeName)!;
        const { code, message } = await outcome(client, method, {
          principal: row.principal,
          timeoutMs: 5000,
        });
        got.push(`${method.name}: ${Code[code]}`);
        want.push(`${method.name}: ${row.allowed[i] ? "Unimplemented" : "PermissionDenied"}`);
        if (code === Code.PermissionDenied) {
          // The policy's own words reach the caller.
          expect(message).toMatch(/may not|without a principal|not in trust domain/);
        }
      }
      expect(got).toEqual(want);
    });
  }

  it("sends the policy's reason with PERMISSION_DENIED", async () => {
    const channel = createChannel({
      address: server.address,
      certs: await pki.watch("gateway"),
      server: pki.id("registry"),
    });
    channels.push(channel);
    const client = createClient(ExecutorService, channel) as unknown as AnyClient;
    const result = await outcome(client, ExecutorService.method.getGoal, {
      principal: principal("globex", "gus", ["goals.read"]),
    });
    expect(result.code).toBe(Code.PermissionDenied);
    expect(result.message).toContain("tenant globex may not access tenant acme");
  });
});
