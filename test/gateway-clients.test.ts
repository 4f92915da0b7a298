/**
 * Real external clients against the gateway: `buf curl` in the Connect, gRPC
 * (h2c) and gRPC-Web protocols, plain `curl` with JSON, and `grpcurl`
 * through the gateway's reflection; and the SDK over gRPC-Web and over
 * gRPC/HTTP-2 (connect-node).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const run = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();
const buf = join(process.cwd(), "node_modules/.bin/buf");
const grpcurl =
  [join(homedir(), "go/bin/grpcurl"), "/usr/local/bin/grpcurl"].find(existsSync) ?? "grpcurl";

describe.skipIf(!pg || !nats)("gateway with external clients", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, stepMs: 20 });
  }, 60_000);
  afterAll(() => f?.close());

  const auth = () => `Authorization: Bearer ${f.keys.acmeWriter}`;
  const bufCurl = async (protocol: string, method: string, data: string) => {
    const args = ["curl", "--schema", "proto", "--protocol", protocol, "-H", auth(), "-d", data];
    if (protocol === "grpc") args.push("--http2-prior-knowledge");
    const { stdout } = await run(buf, [...args, `${f.url}/agentmesh.v1.${method}`], {
      timeout: 20_000,
    });
    return stdout;
  };

  for (const protocol of ["connect", "grpc", "grpcweb"]) {
    it(`buf curl --protocol ${protocol}: submit, then stream WatchGoal to the end`, async () => {
      const submitted = JSON.parse(
        await bufCurl(
          protocol,
          "ExecutorService/SubmitGoal",
          JSON.stringify({ kind: diamondKind, input: { topic: "tides" } }),
        ),
      ) as { goal: { goalId: string; tenantId: string } };
      expect(submitted.goal.tenantId).toBe("acme");
      const out = await bufCurl(
        protocol,
        "ExecutorService/WatchGoal",
        JSON.stringify({ goalId: submitted.goal.goalId }),
      );
      expect(out).toContain('"submitted"');
      expect(out).toContain('"GOAL_STATUS_SUCCEEDED"');
    });
  }

  it("buf curl reports a denial with its code", async () => {
    const err = await run(buf, [
      "curl",
      "--schema",
      "proto",
      "-H",
      `Authorization: Bearer ${f.keys.acmeReader}`,
      "-d",
      '{"kind":"x"}',
      `${f.url}/agentmesh.v1.ExecutorService/SubmitGoal`,
    ]).then(
      () => undefined,
      (e: { stderr: string }) => e.stderr,
    );
    expect(err).toMatch(/permission_denied/);
  });

  it("plain curl speaks the Connect protocol with JSON", async () => {
    const { stdout } = await run("curl", [
      "-sS",
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "-H",
      `x-api-key: ${f.keys.acmeReader}`,
      "-d",
      "{}",
      `${f.url}/agentmesh.v1.RegistryService/ListAgents`,
    ]);
    const body = JSON.parse(stdout) as { agents: { card: { name: string } }[] };
    expect(body.agents.map((a) => a.card.name)).toContain("text");
    const { stdout: denied } = await run("curl", [
      "-sS",
      "-X",
      "POST",
      "-H",
      "Content-Type: application/json",
      "-d",
      "{}",
      `${f.url}/agentmesh.v1.RegistryService/ListAgents`,
    ]);
    expect(JSON.parse(denied)).toMatchObject({ code: "unauthenticated" });
  });

  it("grpcurl lists and describes through reflection, then calls with a key", async () => {
    const target = f.url.replace("http://", "");
    const { stdout: services } = await run(grpcurl, ["-plaintext", target, "list"]);
    expect(services).toContain("agentmesh.v1.ExecutorService");
    expect(services).toContain("agentmesh.v1.AdminService");
    const { stdout: described } = await run(grpcurl, [
      "-plaintext",
      target,
      "describe",
      "agentmesh.v1.ExecutorService",
    ]);
    expect(described).toContain("rpc WatchGoal");
    const { stdout: called } = await run(grpcurl, [
      "-plaintext",
      "-H",
      auth(),
      "-d",
      "{}",
      target,
      "agentmesh.v1.PlannerService/ListPlaybooks",
    ]);
    expect(called).toContain(`"goalKind": "${diamondKind}"`);
    const denied = await run(grpcurl, [
      "-plaintext",
      "-d",
      "{}",
      target,
      "agentmesh.v1.PlannerService/ListPlaybooks",
    ]).then(
      () => "",
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    );
    expect(denied).toMatch(/Unauthenticated/);
  });

  it("the SDK works over gRPC-Web and over gRPC on HTTP/2", async () => {
    const web = createClient({ baseUrl: f.url, apiKey: f.keys.acmeReader, protocol: "grpc-web" });
    expect((await web.registry.listAgents({})).agents).toHaveLength(3);
    const overJson = await createClient({
      baseUrl: f.url,
      apiKey: f.keys.acmeReader,
    }).planner.listPlaybooks({});
    const grpc = createClient({
      baseUrl: f.url,
      apiKey: f.keys.acmeReader,
      transport: ({ interceptors }) => createGrpcTransport({ baseUrl: f.url, interceptors }),
    });
    const overGrpc = await grpc.planner.listPlaybooks({});
    expect(overGrpc.playbooks.map((p) => p.goalKind)).toContain(diamondKind);
    expect(overGrpc.playbooks).toHaveLength(overJson.playbooks.length);
  });
});
