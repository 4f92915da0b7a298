/**
 * `agentmesh agent run <file.ts>`: the CLI loads a user's TypeScript agent
 * file (a named export picked with --export), registers it over mTLS under
 * the identity AGENTMESH_AGENT_IDENTITY names, runs a goal on its capability,
 * and drains on SIGTERM; a file with several agents and no --export is refused
 * naming them.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { AgentState, RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { watchToEnd } from "../lib/testing/goals.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { outputJson } from "../sdk/client/goal-result.js";

const exec = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();
const file = "test/fixtures/reverse-agent.ts";

describe.skipIf(!pg || !nats)("agentmesh agent run <file>", () => {
  let mesh: TestMesh;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    mesh = await startTestMesh({ databaseUrl: pg!.url, natsUrl: nats!.url });
  }, 60_000);
  afterAll(async () => {
    child?.kill("SIGKILL");
    await mesh?.stop();
  });

  const env = () => ({
    ...process.env,
    ...mesh.childEnv(),
    AGENTMESH_AGENT_IDENTITY: "agent-test",
    LOG_LEVEL: "warn",
  });

  it("refuses a file with several agents unless --export picks one", async () => {
    const err = await exec("node", ["bin/agentmesh.js", "agent", "run", file], {
      env: env(),
      timeout: 60_000,
    }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(2);
    expect((err as { stderr: string }).stderr).toContain(
      "exports several agents (other, reverse): pick one with --export NAME",
    );
  }, 60_000);

  it("registers the file's agent, runs a goal on it, and drains on SIGTERM", async () => {
    child = spawn("node", ["bin/agentmesh.js", "agent", "run", file, "--export", "reverse"], {
      env: env(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
    });
    child.stderr!.on("data", (d) => {
      out += d;
    });
    const ready = /agent (\S+) ready: test\.reverse \(health \S+\) as agent-test, reverse 2\.1\.0/;
    const deadline = Date.now() + 45_000;
    while (!ready.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`agent run: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const agentId = ready.exec(out)![1]!;

    const planner = await mesh.clientAs(PlannerService, "planner", "cli");
    await planner.putPlaybook({
      tenantId: mesh.tenantId,
      playbook: {
        goalKind: "reverse",
        strategies: [
          {
            name: "one",
            // biome-ignore lint/suspicious/noTemplateCurlyInString: a playbook template
            steps: [{ stepId: "r", capability: "test.reverse", input: { text: "${input.text}" } }],
          },
        ],
      },
    });
    const { goal } = await mesh.executor.submitGoal({
      tenantId: mesh.tenantId,
      kind: "reverse",
      input: { text: "mesh" },
    });
    const events = await watchToEnd(mesh.executor, mesh.tenantId, goal!.goalId);
    const finished = events.at(-1)?.kind;
    expect(finished?.case).toBe("finished");
    if (finished?.case !== "finished") return;
    expect(finished.value.status).toBe(GoalStatus.SUCCEEDED);
    expect(outputJson(finished.value.output)).toEqual({ text: "hsem" });

    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    expect(code, out).toBe(0);
    const registry = await mesh.clientAs(RegistryService, "registry", "cli");
    const { agent } = await registry.getAgent({ agentId });
    expect(agent?.state).toBe(AgentState.DEREGISTERED);
  }, 90_000);
});
