/**
 * A Python client generated from the contract with Debian's protoc and gRPC
 * plugin (`sdk/python/generate.sh`) against a running mesh: it submits and watches a
 * goal over gRPC through the gateway and sees a bad goal kind refused with
 * INVALID_ARGUMENT naming the field. Needs protobuf-compiler,
 * protobuf-compiler-grpc, python3-grpcio and python3-protobuf (CI installs them).
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const run = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();
const python = "/usr/bin/python3";
const haveTools = await run("bash", [
  "-c",
  `command -v protoc && command -v grpc_python_plugin && ${python} -c "import grpc, google.protobuf"`,
]).then(
  () => true,
  () => false,
);
if (!haveTools && process.env.CI === "true") {
  throw new Error("CI needs Debian's protoc, grpc_python_plugin and python3-grpcio for sdk/python");
}
const sdk = join(import.meta.dirname, "../sdk/python");

describe.skipIf(!pg || !nats || !haveTools)("Python client against a running mesh", () => {
  let f: GatewayFixture;
  let gen: string;
  beforeAll(async () => {
    gen = await mkdtemp(join(tmpdir(), "agentmesh-python-"));
    await run("bash", [join(sdk, "generate.sh"), gen]);
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(async () => {
    await f?.close();
    if (gen) await rm(gen, { recursive: true, force: true });
  });

  it("submits and watches a goal over gRPC; a bad kind is INVALID_ARGUMENT", async () => {
    const { stdout } = await run(
      python,
      [join(sdk, "submit_goal.py"), "echo", '{"message":"hello from Python"}', "--check-invalid"],
      {
        env: {
          ...process.env,
          PYTHONPATH: gen,
          AGENTMESH_TARGET: new URL(f.url).host,
          AGENTMESH_API_KEY: f.keys.acmeWriter,
        },
        timeout: 60_000,
      },
    );
    const result = JSON.parse(stdout) as {
      status: string;
      output: unknown;
      invalid: { code: string; message: string };
    };
    expect(result.status).toBe("GOAL_STATUS_SUCCEEDED");
    expect(JSON.stringify(result.output)).toContain("hello from Python");
    expect(result.invalid.code).toBe("INVALID_ARGUMENT");
    expect(result.invalid.message).toContain("kind: ");
  }, 90_000);
});
