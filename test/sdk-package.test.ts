/**
 * The README's "Write and run your own agent", as an outside team follows it:
 * the package packed and installed into a fresh project, the README's agent
 * and client files taken verbatim from README.md, the certificate issued with
 * the installed `agentmesh certs issue`, the grant added to the policy data,
 * and a running mesh (registry, planner, executor, learning, gateway; real
 * mTLS, NATS, PostgreSQL). The agent registers, a goal using its capability
 * succeeds, and SIGTERM drains it (it deregisters and exits 0).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentState, RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { unpackBundleArchive } from "../lib/policy/bundle.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";
import { installPackedPackage, type PackedProject } from "./support/packed-package.js";

const exec = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();

/** The files the README shows, by the name in their `<!-- readme-file: NAME -->` marker. */
async function readmeFiles(): Promise<Map<string, string>> {
  const readme = await readFile("README.md", "utf8");
  const files = new Map<string, string>();
  for (const m of readme.matchAll(/<!-- readme-file: (\S+) -->\n```\w*\n([\s\S]*?)\n```/g)) {
    files.set(m[1]!, `${m[2]!}\n`);
  }
  return files;
}

/** The policy of the mesh with the README's grant added to its data. */
async function policyWithGrant(dir: string): Promise<string> {
  const { wasm, data } = unpackBundleArchive(await readFile("bundles/agentmesh.tar.gz"));
  const json = JSON.parse(data.toString("utf8"));
  json.agentmesh.config.agent_capabilities["agent-shout"] = ["shout.upper"];
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "policy.wasm"), wasm);
  await writeFile(join(dir, "data.json"), JSON.stringify(json));
  return join(dir, "policy.wasm");
}

describe.skipIf(!pg || !nats)("the installed package runs the README's agent and client", () => {
  let project: PackedProject;
  let f: GatewayFixture;
  let agent: ChildProcess | undefined;
  beforeAll(async () => {
    project = await installPackedPackage();
    f = await startGatewayFixture({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      meshEnv: { AGENTMESH_POLICY: await policyWithGrant(join(project.dir, "policy")) },
    });
    for (const [name, text] of await readmeFiles()) await writeFile(join(project.dir, name), text);
  }, 300_000);
  afterAll(async () => {
    agent?.kill("SIGKILL");
    await f?.close();
    await project?.close();
  });

  const node = (file: string, env: Record<string, string>) =>
    exec("node", [file], {
      cwd: project.dir,
      env: { PATH: process.env.PATH!, ...env },
      timeout: 30_000,
    });

  it("registers the agent, runs a goal on its capability, and drains on SIGTERM", async () => {
    // The certificate, with the installed CLI (the built code of the tarball).
    const issued = await exec(
      "node",
      ["node_modules/.bin/agentmesh", "certs", "issue", "agent-shout", "--dir", f.mesh.certDir],
      { cwd: project.dir, timeout: 30_000 },
    );
    expect(issued.stdout).toContain("agent-shout");

    // The agent, with only the variables the README names (and this test's bus prefix).
    const childEnv = f.mesh.childEnv();
    agent = spawn("node", ["shout-agent.mjs"], {
      cwd: project.dir,
      env: {
        PATH: process.env.PATH!,
        AGENTMESH_CERT_DIR: f.mesh.certDir,
        AGENTMESH_REGISTRY_ADDR: childEnv.AGENTMESH_REGISTRY_ADDR!,
        NATS_URL: nats!.url,
        AGENTMESH_BUS_PREFIX: f.mesh.prefix,
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    agent.stdout!.on("data", (d) => {
      out += d;
    });
    agent.stderr!.on("data", (d) => {
      out += d;
    });
    const deadline = Date.now() + 20_000;
    while (!/agent shout 1\.0\.0 ready as (\S+)/.test(out)) {
      if (Date.now() > deadline || agent.exitCode !== null) throw new Error(`agent: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const agentId = /ready as (\S+)/.exec(out)![1]!;

    // The README's clients: a playbook on the new capability, then the built-in summarize.
    const shout = await node("shout-client.mjs", {
      AGENTMESH_URL: f.url,
      AGENTMESH_API_KEY: f.keys.acmeAdmin,
    });
    expect(shout.stdout).toBe('SUCCEEDED {"text":"HELLO MESH"}\n');
    const summarize = await node("summarize-client.mjs", {
      AGENTMESH_URL: f.url,
      AGENTMESH_API_KEY: f.keys.acmeWriter,
    });
    expect(summarize.stdout).toMatch(/^planned\n[\s\S]*\nsucceeded \{"summary":"[^"]+/m);

    // SIGTERM drains: the process deregisters and exits by itself.
    agent.kill("SIGTERM");
    const [code] = await once(agent, "exit");
    expect(code, out).toBe(0);
    const registry = await f.mesh.clientAs(RegistryService, "registry", "cli");
    const { agent: registered } = await registry.getAgent({ agentId });
    expect(registered?.state).toBe(AgentState.DEREGISTERED);
    expect(registered?.card?.skills.map((s) => s.capability)).toEqual(["shout.upper"]);
  }, 90_000);

  it("runs the same agent exported from a file with the installed `agentmesh agent run`", async () => {
    // As the README says: export the definition instead of calling runAgent.
    const readme = (await readmeFiles()).get("shout-agent.mjs")!;
    const exported = `${readme.slice(0, readme.indexOf("\n// Connects"))}\nexport default shout;\n`;
    await writeFile(join(project.dir, "shout-export.mjs"), exported);
    const childEnv = f.mesh.childEnv();
    agent = spawn("node", ["node_modules/.bin/agentmesh", "agent", "run", "./shout-export.mjs"], {
      cwd: project.dir,
      env: {
        PATH: process.env.PATH!,
        AGENTMESH_CERT_DIR: f.mesh.certDir,
        AGENTMESH_REGISTRY_ADDR: childEnv.AGENTMESH_REGISTRY_ADDR!,
        NATS_URL: nats!.url,
        AGENTMESH_BUS_PREFIX: f.mesh.prefix,
        AGENTMESH_METRICS_PORT: "0",
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    agent.stdout!.on("data", (d) => {
      out += d;
    });
    agent.stderr!.on("data", (d) => {
      out += d;
    });
    const deadline = Date.now() + 20_000;
    while (!/ready: shout\.upper \(health (\S+)\) as agent-shout, shout 1\.0\.0/.test(out)) {
      if (Date.now() > deadline || agent.exitCode !== null) throw new Error(`agent run: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const health = /\(health (\S+)\)/.exec(out)![1]!;
    expect((await fetch(`${health}/readyz`)).status).toBe(200);
    const shout = await node("shout-client.mjs", {
      AGENTMESH_URL: f.url,
      AGENTMESH_API_KEY: f.keys.acmeAdmin,
    });
    expect(shout.stdout).toBe('SUCCEEDED {"text":"HELLO MESH"}\n');
    agent.kill("SIGTERM");
    const [code] = await once(agent, "exit");
    expect(code, out).toBe(0);
  }, 60_000);
  it("ships the SLOs, alert rules and dashboards: the installed `agentmesh ops` checks and writes them", async () => {
    const bin = "node_modules/.bin/agentmesh";
    const opts = { cwd: project.dir, env: { PATH: process.env.PATH! }, timeout: 30_000 };
    // The shipped rules are the ones the shipped SLOs generate.
    await exec("node", [bin, "ops", "rules", "--check"], opts);
    await exec("node", [bin, "ops", "dashboards", "--dir", "my-ops"], opts);
    const dashboards = await readdir(join(project.dir, "my-ops/grafana/dashboards"));
    expect(dashboards.filter((f) => f.endsWith(".json")).length).toBeGreaterThan(0);
  }, 60_000);
});
