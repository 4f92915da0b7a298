/**
 * The build gate: only builtins the JavaScript opa-wasm runtime implements
 * compile, and the committed module is what the sources build to. Needs the
 * `opa` CLI (`.ci/tools.sh`); fails under CI without it, skips loudly elsewhere.
 */
import { access, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPolicy, compileBundle } from "./build.js";
import { loadBundleArchive } from "./bundle.js";
import { untar } from "./tar.js";
import { committedBundlePath, committedDataPath, findOpa, scratchPolicies } from "./testing.js";

const opa = findOpa();
const policiesDir = join(committedDataPath, "..");

describe("policies/capabilities.json", () => {
  it("allows only builtins the opa-wasm npm runtime implements", async () => {
    const read = async (p: string) =>
      JSON.parse(await readFile(p, "utf8")) as { builtins: { name: string }[] };
    const ours = await read(join(policiesDir, "capabilities.json"));
    const runtime = await read(
      join(policiesDir, "../node_modules/@open-policy-agent/opa-wasm/capabilities.json"),
    );
    const supported = new Set(runtime.builtins.map((b) => b.name));
    const extra = ours.builtins.map((b) => b.name).filter((n) => !supported.has(n));
    expect(extra).toEqual([]);
    for (const missing of ["http.send", "io.jwt.decode", "time.parse_rfc3339_ns", "time.now_ns"]) {
      expect(ours.builtins.map((b) => b.name)).not.toContain(missing);
    }
  });
});

describe.skipIf(!opa)("agentmesh policy build (opa)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentmesh-build-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function scratch(name: string, rego: string): Promise<string> {
    const root = join(dir, name, "policies");
    await mkdir(join(root, "authz"), { recursive: true });
    await copyFile(join(policiesDir, "capabilities.json"), join(root, "capabilities.json"));
    await copyFile(committedDataPath, join(root, "data.json"));
    await writeFile(join(root, "authz", "authz.rego"), rego);
    return root;
  }

  const forbidden: [string, string][] = [
    ["http.send", 'http.send({"method": "GET", "url": "http://example.com"}).status_code == 200'],
    ["io.jwt.decode", 'io.jwt.decode(input.token)[1].sub == "root"'],
    ["time.parse_rfc3339_ns", 'time.parse_rfc3339_ns("2026-01-01T00:00:00Z") > 0'],
  ];
  for (const [builtin, expr] of forbidden) {
    it(`refuses a policy that uses ${builtin}`, async () => {
      const root = await scratch(
        builtin.replaceAll(".", "-"),
        `package agentmesh.authz\n\ndecision := {"allow": true, "reason": "x", "principal_trusted": false} if ${expr}\n`,
      );
      await expect(compileBundle({ dir: root, opa })).rejects.toThrow(
        new RegExp(`undefined function ${builtin.replaceAll(".", "\\.")}`),
      );
    });
  }

  it("rebuilds the committed bundle byte for byte: code, data and revision in one archive, no tests or examples", async () => {
    const out = join(dir, "rebuilt.tar.gz");
    const result = await buildPolicy({ dir: policiesDir, out, opa });
    const [rebuilt, committed] = await Promise.all([readFile(out), readFile(committedBundlePath)]);
    expect(rebuilt.equals(committed)).toBe(true);
    expect(result.tests).toBeGreaterThan(40);
    expect(result.corpus).toBeGreaterThan(1000);
    const files = untar(gunzipSync(rebuilt));
    expect([...files.keys()].sort()).toEqual([
      ".manifest",
      "data.json",
      "policies/authz/authz.rego",
      "policies/authz/card_signing.rego",
      "policy.wasm",
    ]);
    expect(JSON.parse(files.get(".manifest")!.toString())).toMatchObject({
      revision: result.revision,
      wasm: [{ entrypoint: "agentmesh/authz/decision", module: "/policy.wasm" }],
    });
    const bundle = await loadBundleArchive(rebuilt);
    expect(bundle.revision).toBe(result.revision);
    expect(bundle.decide({}).allow).toBe(false);
  });

  it("refuses to build when a Rego test fails (a second decision rule), and writes nothing", async () => {
    const root = await scratchPolicies(join(dir, "second-decision"), {
      "authz/frozen.rego": `package agentmesh.authz

decision := {"allow": false, "reason": "acme is frozen", "principal_trusted": false} if {
	input.resource.tenant_id == "acme"
}
`,
    });
    const out = join(dir, "second-decision", "out.tar.gz");
    const err = await buildPolicy({ dir: root, out, opa }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^Rego tests failed; no bundle was built:\n/);
    expect((err as Error).message).toMatch(
      /rule data\.agentmesh\.authz\.decision produced conflicting values[\s\S]*frozen\.rego:3/,
    );
    await expect(access(out)).rejects.toThrow();
  });

  it("compiles an extension package from ext/ into the bundle", async () => {
    const root = await scratchPolicies(join(dir, "ext"), {
      "ext/no_shell.rego": `package agentmesh.ext.no_shell

deny contains "no shell here" if input.resource.capability == "shell.exec"
`,
    });
    const out = join(dir, "ext", "out.tar.gz");
    await buildPolicy({ dir: root, out, opa });
    const bundle = await loadBundleArchive(await readFile(out));
    const input = (capability: string) => ({
      peer: { spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/executor" },
      method: { full: "agentmesh.v1.ExecutorService/DispatchStep" },
      resource: { tenant_id: "acme", capability },
    });
    expect(bundle.decide(input("shell.exec"))).toEqual({
      allow: false,
      reason: "no shell here",
      principalTrusted: false,
    });
    expect(bundle.decide(input("util.echo")).allow).toBe(true);
  });
});
