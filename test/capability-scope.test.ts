/**
 * A capability's declared scope decides who may use it, end to end: an
 * operator registers the tool named like `util.echo` with the scope
 * `tools:echo`; a goal of a key lacking that scope fails at dispatch with
 * PERMISSION_DENIED and the policy's reason (audited as `policy.denied`), a
 * key holding it (a role of that name) runs the same goal. Real mesh, real
 * compiled bundle, through the gateway. The same gateway serves the tool
 * catalog the dashboard links to.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import type { Goal } from "../gen/agentmesh/v1/executor_pb.js";
import { RegistryService, SideEffect } from "../gen/agentmesh/v1/registry_pb.js";
import { packagePath } from "../lib/config/package-root.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { createClient } from "../sdk/client/index.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const exec = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("capability scopes at dispatch", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url });
    const registry = await f.mesh.clientAs(RegistryService, "registry", "cli");
    await registry.registerTool({
      tool: {
        name: "util.echo",
        description: "echo, scoped for this test",
        authScope: "tools:echo",
        sideEffect: SideEffect.READ_ONLY,
      },
    });
  }, 60_000);
  afterAll(() => f?.close());

  const run = async (apiKey: string) => {
    const mesh = createClient({ baseUrl: f.url, apiKey });
    const { goal } = await mesh.executor.submitGoal({ kind: "echo", input: { message: "hi" } });
    let finished: Goal | undefined;
    await waitFor("the goal to finish", async () => {
      const { goal: g } = await mesh.executor.getGoal({ goalId: goal!.goalId });
      if (g && g.status >= GoalStatus.SUCCEEDED) finished = g;
      return finished !== undefined;
    });
    return finished!;
  };

  it("refuses a step of a scoped capability for a principal lacking the scope, audited", async () => {
    // The executors read tool metadata at most every 2 s: the first goal may predate it.
    let failed: Goal | undefined;
    await waitFor(
      "a goal refused for the scope",
      async () => {
        const g = await run(f.keys.acmeWriter);
        if (g.status === GoalStatus.FAILED) failed = g;
        return failed !== undefined;
      },
      20_000,
    );
    expect(failed?.error?.code).toBe("PERMISSION_DENIED");
    expect(failed?.error?.message).toContain("lacks the scope tools:echo that util.echo requires");
    await waitFor(
      "the denial in the audit log",
      async () =>
        (await f.store.audit.list({ tenantId: "acme", limit: 1000 })).some(
          (e) =>
            e.action === "policy.denied" &&
            e.resource === "/agentmesh.v1.ExecutorService/DispatchStep" &&
            (e.details as { capability?: string }).capability === "util.echo" &&
            String((e.details as { reason?: string }).reason).includes("tools:echo"),
        ),
      5_000,
    );
  });

  it("runs it for a principal holding the scope", async () => {
    const scoped = await f.key("acme", ["goals.write", "tools:echo"]);
    const g = await run(scoped);
    expect(g.status).toBe(GoalStatus.SUCCEEDED);
  });

  it("serves the catalog the dashboard links to: scopes, limits and side effects per capability", async () => {
    const page = await (await fetch(`${f.url}/`)).text();
    expect(page).toContain('<a id="catalog-link" href="/catalog">Tool catalog</a>');
    const md = await fetch(`${f.url}/catalog`);
    expect(md.headers.get("content-type")).toBe("text/markdown; charset=utf-8");
    expect(await md.text()).toBe(
      await readFile(packagePath("docs", "catalog", "catalog.md"), "utf8"),
    );
    const json = (await (await fetch(`${f.url}/catalog.json`)).json()) as {
      capabilities: { capability: string; sideEffect: string; authScope: string }[];
    };
    expect(json.capabilities.find((c) => c.capability === "http.fetch")).toMatchObject({
      sideEffect: "destructive",
      authScope: "",
    });
  });

  it("agentmesh catalog --live takes each capability's reliability from the registry", async () => {
    const { agents } = await f.store.agents.list({ capability: "util.echo", liveOnly: true });
    for (const a of agents) await f.store.agents.setReliability(a.id, "util.echo", 0.875);
    const out = await mkdtemp(join(tmpdir(), "agentmesh-catalog-"));
    try {
      await exec("node", ["bin/agentmesh.js", "catalog", "--live", "--out", out], {
        env: { ...process.env, AGENTMESH_URL: f.url, AGENTMESH_API_KEY: f.keys.acmeReader },
        timeout: 60_000,
      });
      const json = JSON.parse(await readFile(join(out, "catalog.json"), "utf8")) as {
        capabilities: { capability: string; reliability: number | null }[];
      };
      const byName = new Map(json.capabilities.map((c) => [c.capability, c.reliability]));
      expect(byName.get("util.echo")).toBe(0.875);
      // http.fetch has no live agent here: not measured.
      expect(byName.get("http.fetch")).toBeNull();
      expect(await readFile(join(out, "catalog.md"), "utf8")).toContain("- reliability: 0.88");
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 90_000);
});
