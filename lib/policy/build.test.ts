/**
 * The build gate: only builtins the JavaScript opa-wasm runtime implements
 * compile, and the committed module is what the sources build to. Needs the
 * `opa` CLI (`.ci/tools.sh`); fails under CI without it, skips loudly elsewhere.
 */
import { execFileSync } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildPolicy } from "./build.js";
import { readPolicyBundle } from "./bundle.js";
import { committedDataPath, committedWasmPath } from "./testing.js";

const opa = findOpa();
const policiesDir = join(committedWasmPath, "..");

function findOpa(): string | undefined {
  for (const candidate of [process.env.OPA, "opa", join(homedir(), "go/bin/opa")]) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ["version"], { stdio: "ignore" });
      return candidate;
    } catch {
      // try the next one
    }
  }
  if (process.env.CI === "true")
    throw new Error("opa CLI not found; CI installs it with .ci/tools.sh");
  console.warn("\n!!! opa CLI not found: SKIPPING the policy build tests. Run .ci/tools.sh. !!!\n");
  return undefined;
}

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
      await expect(buildPolicy({ dir: root, opa })).rejects.toThrow(
        new RegExp(`undefined function ${builtin.replaceAll(".", "\\.")}`),
      );
    });
  }

  it("rebuilds the committed policy.wasm byte for byte", async () => {
    const out = join(dir, "rebuilt.wasm");
    await buildPolicy({ dir: policiesDir, out, opa });
    const [rebuilt, committed] = await Promise.all([readFile(out), readFile(committedWasmPath)]);
    expect(rebuilt.equals(committed)).toBe(true);
    const bundle = await readPolicyBundle(out, committedDataPath);
    expect(bundle.decide({}).allow).toBe(false);
  });
});
