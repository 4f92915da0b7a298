/**
 * The `agentmesh` CLI against a running gateway, as a user runs it: a real
 * child process configured by AGENTMESH_URL and AGENTMESH_API_KEY. Each
 * invocation starts the CLI from source (seconds), so the calls are few.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { createClient } from "../sdk/client/index.js";
import { diamondKind, type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const exec = promisify(execFile);
const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("agentmesh CLI through the gateway", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({ databaseUrl: pg!.url, natsUrl: nats!.url, stepMs: 30 });
  }, 60_000);
  afterAll(() => f?.close());

  const cli = (key: string, ...args: string[]) => cliWith({ AGENTMESH_API_KEY: key }, ...args);
  const cliWith = async (env: Record<string, string | undefined>, ...args: string[]) => {
    try {
      const { stdout, stderr } = await exec("node", ["bin/agentmesh.js", ...args], {
        env: {
          ...process.env,
          AGENTMESH_URL: f.url,
          LOG_LEVEL: "silent",
          ...env,
        },
        timeout: 30_000,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };

  it("takes its key from lib/secrets: a mounted cli-api-key, else the bootstrap admin key", async () => {
    const home = await mkdtemp(join(tmpdir(), "agentmesh-cli-"));
    try {
      const base = { AGENTMESH_API_KEY: undefined, AGENTMESH_HOME: home };
      const none = await cliWith(base, "goal", "ls");
      expect(none.code).not.toBe(0);
      expect(none.stderr).toContain("set AGENTMESH_API_KEY");
      // Where `agentmesh dev` leaves the bootstrap key: a platform admin may list tenants.
      await writeFile(join(home, "admin.key"), `${f.keys.admin}\n`, { mode: 0o600 });
      const tenants = await cliWith(base, "tenants", "ls");
      expect(tenants.stderr).toBe("");
      expect(tenants.stdout).toContain("acme");
      // A mounted Secret's cli-api-key comes first: acme's reader may not list tenants.
      const dir = join(home, "mounted");
      await mkdir(dir);
      await writeFile(join(dir, "cli-api-key"), f.keys.acmeReader, { mode: 0o600 });
      const reader = await cliWith({ ...base, AGENTMESH_SECRETS_DIR: dir }, "tenants", "ls");
      expect(reader.code).toBe(1);
      expect(reader.stderr).toMatch(/^permission_denied: /);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  }, 120_000);

  it("submits a goal and watches its steps to the end", async () => {
    const r = await cli(
      f.keys.acmeWriter,
      "goal",
      "submit",
      "--kind",
      diamondKind,
      "--input",
      '{"topic":"tides"}',
      "--watch",
    );
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/submitted goal \S+ \(diamond\)/);
    for (const step of ["plan", "fetch", "analyze", "report"])
      expect(r.stdout).toContain(`✔ ${step} succeeded`);
    // The end: the goal's output (the report step's) as plain JSON.
    expect(r.stdout).toMatch(/goal \S+ succeeded\n\{\n {2}"message": "report done"\n\}\n$/);
    const id = /submitted goal (\S+)/.exec(r.stdout)?.[1] ?? "";
    const ls = await cli(f.keys.acmeReader, "goal", "ls");
    expect(ls.stdout).toContain(id);
    const get = await cli(f.keys.acmeReader, "goal", "get", id);
    expect(get.stdout).toMatch(/report\s+util\.echo\s+succeeded/);
    // The goal's trace id, shared by its child goals and its agents' spans.
    expect(get.stdout).toMatch(/\ntrace [0-9a-f]{32}\n/);
  }, 120_000);

  it("lists agents, creates a tenant and a key, and reports errors by code", async () => {
    const agents = await cli(f.keys.acmeReader, "agents", "ls");
    expect(agents.stdout).toMatch(/^NAME\s+VERSION\s+STATE\s+CAPABILITIES\s/);
    expect(agents.stdout).toMatch(/\nutil\s+1\.0\.0\s+live\s+util\.echo,\S+\s.*\s\ds ago\s+\S+/);
    const tenant = await cli(f.keys.admin, "tenants", "create", "umbrella", "--name", "Umbrella");
    expect(tenant.stdout).toContain("created tenant umbrella");
    const update = await cli(
      f.keys.admin,
      "tenants",
      "update",
      "umbrella",
      "--goals",
      "3",
      "--quota",
      "util.echo=60",
      "--canary",
      "off",
    );
    expect(JSON.parse(update.stdout)).toMatchObject({
      maxConcurrentGoals: 3,
      stepQuotas: { "util.echo": 60 },
      // Proto JSON leaves out false: canary off, the LLM planner still on.
      features: { llmPlanner: true },
    });
    expect(JSON.parse(update.stdout).features.canary).toBeUndefined();
    expect(
      (await cli(f.keys.admin, "tenants", "suspend", "umbrella", "--reason", "t")).stdout,
    ).toBe("suspended tenant umbrella\n");
    expect(
      JSON.parse((await cli(f.keys.admin, "tenants", "usage", "umbrella")).stdout),
    ).toMatchObject({
      tenantId: "umbrella",
    });
    expect((await cli(f.keys.admin, "tenants", "resume", "umbrella")).stdout).toBe(
      "resumed tenant umbrella\n",
    );
    const key = await cli(
      f.keys.admin,
      "keys",
      "create",
      "--tenant",
      "umbrella",
      "--roles",
      "goals.read",
    );
    expect(key.code).toBe(0);
    const secret = key.stdout.trim();
    expect(secret).toMatch(/^am_/);
    const denied = await cli(secret, "goal", "submit", "--kind", diamondKind);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/^permission_denied: /);
    const bad = await cli("am_000000000000_nope", "goal", "ls");
    expect(bad.stderr).toMatch(/^unauthenticated: /);
  }, 120_000);

  it("cancels a long-running goal of the built-in wait kind", async () => {
    const submitted = await cli(
      f.keys.acmeWriter,
      "goal",
      "submit",
      "--kind",
      "wait",
      "--input",
      '{"ms":600000}',
    );
    expect(submitted.code).toBe(0);
    const id = /submitted goal (\S+)/.exec(submitted.stdout)?.[1] ?? "";
    const watching = cli(f.keys.acmeReader, "goal", "watch", id);
    const cancelled = await cli(f.keys.acmeWriter, "goal", "cancel", id, "--reason", "enough");
    expect(cancelled.stdout).toBe(`goal ${id} cancelled\n`);
    const watched = await watching;
    expect(watched.code).toBe(1);
    expect(watched.stdout).toMatch(/goal \S+ cancelled\nerror: CANCELLED: enough\n$/);
    const refused = await cli(
      f.keys.acmeWriter,
      "goal",
      "submit",
      "--kind",
      "wait",
      "--input",
      '{"ms":600001}',
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^invalid_argument: /);
    const unknown = await cli(f.keys.acmeWriter, "goal", "submit", "--kind", "no-such-kind");
    expect(unknown.stderr).toMatch(/^not_found: /);
    // Refused submissions store nothing: the one wait goal is the cancelled one, no-such-kind has none.
    const waits = await cli(f.keys.acmeReader, "goal", "ls", "--kind", "wait");
    expect(waits.stdout.trim().split("\n").slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^${id}\\s+wait\\s+cancelled\\s`)),
    ]);
    const none = await cli(f.keys.acmeReader, "goal", "ls", "--kind", "no-such-kind");
    expect(none.stdout.trim().split("\n")).toHaveLength(1);
  }, 120_000);

  it("validates, puts, lists, shows and deletes a playbook file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "playbook-cli-"));
    try {
      const good = join(dir, "greet.yaml");
      await writeFile(
        good,
        [
          "goalKind: greet",
          "description: Echo a greeting.",
          "strategies:",
          "  - name: direct",
          "    steps:",
          "      - stepId: greet",
          "        capability: util.echo",
          // biome-ignore lint/suspicious/noTemplateCurlyInString: a playbook template
          '        input: { greeting: "hello ${input.name}" }',
          "        timeout: 5s",
          "",
        ].join("\n"),
      );
      const bad = join(dir, "bad.yaml");
      await writeFile(
        bad,
        "goalKind: bad\nstrategies:\n  - name: x\n    steps:\n      - stepId: a\n        tmeout: 3s\n",
      );
      const validated = await cli(f.keys.acmeAdmin, "playbook", "validate", good, bad);
      expect(validated.code).toBe(1);
      expect(validated.stdout).toBe(`${good}: ok (goal kind greet)\n`);
      expect(validated.stderr).toMatch(/bad\.yaml.*tmeout \(line 6\): unknown field/s);

      const put = await cli(f.keys.acmeAdmin, "playbook", "put", good);
      expect(put.stdout).toMatch(/^put playbook greet version \d+\n$/);
      const ls = await cli(f.keys.acmeReader, "playbook", "ls");
      expect(ls.stdout).toMatch(/\ngreet\s+acme\s+\d+\s+direct\s+Echo a greeting\./);
      expect(ls.stdout).toMatch(/\nwait\s+built-in\s+-\s+sleep\s/);
      // A reader sees the playbook with its step inputs (sensitive) redacted; put refuses that back.
      const read = await cli(f.keys.acmeReader, "playbook", "show", "greet");
      expect(read.stdout).toContain("stepId: greet");
      expect(read.stdout).toContain("[redacted: sensitive]");
      expect(read.stdout).not.toContain("hello");
      await writeFile(join(dir, "read.yaml"), read.stdout);
      const putRead = await cli(f.keys.acmeAdmin, "playbook", "put", join(dir, "read.yaml"));
      expect(putRead.code).toBe(1);
      expect(putRead.stderr).toContain('is "[redacted: sensitive]", not an input');
      const shown = await cli(f.keys.acmeAdmin, "playbook", "show", "greet");
      expect(shown.stdout).toContain("stepId: greet");
      expect(shown.stdout).toContain("timeout: 5s");
      // What show prints is a file put takes again.
      await writeFile(join(dir, "shown.yaml"), shown.stdout);
      expect((await cli(f.keys.acmeAdmin, "playbook", "put", join(dir, "shown.yaml"))).code).toBe(
        0,
      );

      const run = await cli(
        f.keys.acmeWriter,
        "goal",
        "submit",
        "--kind",
        "greet",
        "--input",
        '{"name":"ada"}',
        "--watch",
      );
      expect(run.stdout).toMatch(/goal \S+ succeeded\n\{\n {2}"greeting": "hello ada"\n\}\n$/);
      expect((await cli(f.keys.acmeAdmin, "playbook", "rm", "greet")).stdout).toBe(
        "deleted playbook greet\n",
      );
      const gone = await cli(f.keys.acmeReader, "playbook", "show", "greet");
      expect(gone.stderr).toMatch(/^not_found: /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("lists recent policy decisions filtered as the console filters them", async () => {
    // One denial and some allowed calls of acme, one allowed call of globex, through the gateway.
    const sdk = (apiKey: string) => createClient({ baseUrl: f.url, apiKey });
    await expect(sdk(f.keys.acmeReader).executor.submitGoal({ kind: diamondKind })).rejects.toThrow(
      /may not call/,
    );
    await sdk(f.keys.acmeWriter).executor.listGoals({});
    await sdk(f.keys.globexWriter).executor.listGoals({});
    const rows = (stdout: string) => stdout.trim().split("\n").slice(1);

    const denied = await cli(f.keys.acmeAdmin, "policy", "decisions", "--decision", "denied");
    expect(denied.stderr).toBe("");
    expect(denied.stdout).toMatch(/^TIME\s+DECISION\s+CALLER\s+METHOD\s+REASON\n/);
    expect(rows(denied.stdout).length).toBeGreaterThan(0);
    for (const row of rows(denied.stdout)) expect(row).toMatch(/^\S+\s+denied\s+acme\//);
    expect(denied.stdout).toMatch(
      /denied\s+acme\/\S+\s+ExecutorService\/SubmitGoal\s+principal acme\//,
    );

    // A tenant admin sees its tenant's only; --method takes a short name, --who part of tenant/caller.
    const listed = await cli(
      f.keys.acmeAdmin,
      "policy",
      "decisions",
      "--method",
      "ListGoals",
      "--decision",
      "allowed",
      "--json",
    );
    const lines = listed.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(0);
    for (const d of lines) {
      expect(d).toMatchObject({
        tenantId: "acme",
        method: "agentmesh.v1.ExecutorService/ListGoals",
        allow: true,
      });
      expect(d.input).toBeDefined(); // what the policy read, for an admin
    }
    const everyTenant = await cli(
      f.keys.admin,
      "policy",
      "decisions",
      "--all-tenants",
      "--who",
      "GLOBEX/",
      "--limit",
      "1",
    );
    expect(rows(everyTenant.stdout)).toHaveLength(1);
    expect(rows(everyTenant.stdout)[0]).toMatch(/^\S+\s+allowed\s+globex\//);
    const acmeOnly = await cli(f.keys.acmeAdmin, "policy", "decisions", "--who", "globex/");
    expect(rows(acmeOnly.stdout)).toEqual([]);

    // A reader may not list decisions; a bad filter is a usage error.
    const reader = await cli(f.keys.acmeReader, "policy", "decisions");
    expect(reader.code).toBe(1);
    expect(reader.stderr).toMatch(/^permission_denied: /);
    expect((await cli(f.keys.acmeAdmin, "policy", "decisions", "--decision", "maybe")).code).toBe(
      2,
    );
  }, 120_000);
});
