/**
 * The generated Go SDK (`sdk/go`) against a running mesh: `go test` submits
 * and watches a goal over gRPC (grpc-go) and over Connect (connect-go)
 * through the gateway, and sees a bad goal kind refused by the contract's
 * rules. Needs the Go toolchain (CI installs the pinned plugins and has Go).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const run = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();
const go =
  ["/usr/local/go/bin/go", "/usr/lib/go/bin/go", join(homedir(), "go/bin/go")].find(existsSync) ??
  "go";
const haveGo = await run(go, ["version"]).then(
  () => true,
  () => false,
);
if (!haveGo && process.env.CI === "true") throw new Error("CI needs the Go toolchain for sdk/go");

describe.skipIf(!pg || !nats || !haveGo)("Go SDK against a running mesh", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(() => f?.close());

  it("submits and watches a goal over gRPC and over Connect", async () => {
    const { stdout } = await run(go, ["test", "-count=1", "-v", "."], {
      cwd: join(import.meta.dirname, "../sdk/go"),
      env: {
        ...process.env,
        AGENTMESH_URL: f.url,
        AGENTMESH_API_KEY: f.keys.acmeWriter,
        GOFLAGS: "-mod=mod",
      },
      timeout: 240_000,
    });
    expect(stdout).toMatch(/--- PASS: TestGoalOverGRPC/);
    expect(stdout).toMatch(/--- PASS: TestGoalOverConnect/);
  }, 300_000);
});
