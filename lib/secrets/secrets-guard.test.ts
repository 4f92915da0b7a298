/**
 * Nothing outside `lib/secrets` reads a secret from the environment or a
 * file: shipped code asks the secret store (`secrets.get("jwt-jwks")`).
 * This test reads the shipped sources and fails on
 * - a secret-looking variable read directly (`env.X`, `process.env.X`),
 *   through its setting (`settings.x.read(...)`) or named in a string,
 * - a file read (`readFile`, `readFileSync`, `createReadStream`) whose path
 *   names a key, token, password, secret or JWKS,
 * except the few places listed below, each with why. An exception that no
 * longer matches anything fails too, so the list cannot rot.
 */
import { readFileSync } from "node:fs";
import { relative, sep } from "node:path";
import { describe, expect, it } from "vitest";
import { packagePath } from "../config/package-root.js";
import { allSettings, settings } from "../config/settings.js";
import { shippedSources } from "../testing/shipped-sources.js";

/** A variable name that looks like it carries a secret or the path of one. */
const secretLooking = /KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|JWKS|DATABASE_URL/;
/** Secret-looking names that hold no secret. */
const notSecrets = new Set([
  "AGENTMESH_SECRETS_PROVIDER", // file or vault
  "AGENTMESH_SECRETS_DIR", // where secret files are, not one
  "AGENTMESH_VAULT_TRANSIT_KEY", // the name of a Transit key; the key never leaves Vault
  "AGENTMESH_JWT_JWKS_URL", // a public URL of public keys, fetched by jose
]);
/** A file path expression that names a secret. */
const secretPath = /key|token|secret|password|passwd|credential|jwks/i;

/** `file: what` pairs allowed outside lib/secrets, and why. */
const allowed: Record<string, string> = {
  // Certificate material has its own provider in lib/tls: watched and swapped on rotation.
  'lib/tls/cert-watcher.ts: readFile(join(dir, "tls.key"))':
    "the workload's mTLS key, reloaded by the certificate watcher",
  "lib/tls/dev-ca.ts: readFile(paths.key)": "the development CA checking the keys it issued",
  'lib/tls/dev-ca.ts: readFile(paths.key, "utf8")': "the development CA loading a key it issued",
  "gateway/http-edge.ts: readFile(files.keyFile)":
    "the public listener's TLS key, re-read with its certificate when they change",
  "cli/commands/serve-gateway.ts: AGENTMESH_GATEWAY_TLS_KEY":
    "the path of that TLS key, handed to the listener",
  "cli/commands/serve-gateway.ts: AGENTMESH_JWT_JWKS_FILE":
    "only whether it is set (JWT on needs an issuer and an audience); the file is read by lib/secrets",
  'lib/store/embedded-postgres.ts: readFile(passwordFile, "utf8")':
    "the embedded server's own generated password beside its data directory (never configured)",
  'agents/shell-sandbox.ts: readFile("/etc/passwd", "utf8")':
    "the user database (names and ids; no password is kept there)",
  'cli/commands/cards.ts: readFile(required(values, "key"), "utf8")':
    "a publisher's card-signing key named on the command line (`cards sign --key`), not the mesh's",
  "lib/testing/infra.ts: DATABASE_URL": "tests' database (test support, run by no mesh process)",
};

/** The code without comments (examples in doc comments are not reads). */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split("\n")
    .filter((line) => !line.trim().startsWith("//"))
    .join("\n");
}

/** The argument text of each call of `fn(` (balanced parentheses). */
function callArguments(text: string, fn: RegExp): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(fn)) {
    let depth = 1;
    let i = m.index + m[0].length;
    const start = i;
    for (; i < text.length && depth > 0; i++) {
      if (text[i] === "(") depth++;
      else if (text[i] === ")") depth--;
    }
    out.push(
      text
        .slice(start, i - 1)
        .replace(/\s+/g, " ")
        .trim()
        .replace(/,$/, ""),
    );
  }
  return out;
}

/** Setting property → variable name, for the secret-looking settings. */
const secretSettings = new Map(
  Object.entries(settings)
    .filter(([, s]) => secretLooking.test(s.name) && !notSecrets.has(s.name))
    .map(([prop, s]) => [prop, s.name]),
);

const secretVariables = new Set(secretSettings.values());

/** What a file reads that looks like a secret: `file: VARIABLE` or `file: readFile(arg)`. */
function secretReads(file: string, text: string): string[] {
  const found = new Set<string>();
  const body = code(text);
  for (const m of body.matchAll(/\b(?:env|process\.env)(?:\.|\[["'`])([A-Z][A-Z0-9_]*)/g)) {
    if (secretLooking.test(m[1]!) && !notSecrets.has(m[1]!)) found.add(`${file}: ${m[1]}`);
  }
  // A setting's name in a string is how a read is spelled indirectly (`env[name]`).
  for (const m of body.matchAll(/["'`]([A-Z][A-Z0-9_]*)["'`]/g)) {
    if (secretVariables.has(m[1]!)) found.add(`${file}: ${m[1]}`);
  }
  for (const m of body.matchAll(/\bsettings\.(\w+)\.read\(/g)) {
    const name = secretSettings.get(m[1]!);
    if (name) found.add(`${file}: ${name}`);
  }
  for (const arg of callArguments(body, /\b(readFile|readFileSync|createReadStream)\(/g)) {
    if (secretPath.test(arg)) found.add(`${file}: readFile(${arg})`);
  }
  return [...found];
}

describe("secrets guard", () => {
  it("knows the secret-looking settings (the registry has them)", () => {
    expect([...secretSettings.values()].sort()).toEqual(
      allSettings
        .map((s) => s.name)
        .filter((n) => secretLooking.test(n) && !notSecrets.has(n))
        .sort(),
    );
    expect([...secretSettings.values()]).toEqual(
      expect.arrayContaining([
        "DATABASE_URL",
        "AGENTMESH_API_KEY",
        "AGENTMESH_LLM_PLANNER_API_KEY",
        "AGENTMESH_JWT_JWKS_FILE",
        "AGENTMESH_AUDIT_CHECKPOINT_KEY",
        "VAULT_TOKEN",
      ]),
    );
  });

  it("finds the reads it is meant to find", () => {
    expect(
      secretReads(
        "x.ts",
        [
          "const k = process.env.AGENTMESH_LLM_PLANNER_API_KEY;",
          'const u = env["DATABASE_URL"];',
          "const f = settings.jwtJwksFile.read(env);",
          'const t = readFileSync(join(home, "admin.key"), "utf8");',
          "const j = await readFile(\n  options.jwksFile,\n  'utf8',\n);",
          "// process.env.VAULT_TOKEN in a comment is no read",
          'export const keyVariable = "AGENTMESH_API_KEY";',
          'const ok = env.AGENTMESH_SECRETS_DIR ?? readFile("policies/data.json");',
        ].join("\n"),
      ),
    ).toEqual([
      "x.ts: AGENTMESH_LLM_PLANNER_API_KEY",
      "x.ts: DATABASE_URL",
      "x.ts: AGENTMESH_API_KEY",
      "x.ts: AGENTMESH_JWT_JWKS_FILE",
      'x.ts: readFile(join(home, "admin.key"), "utf8")',
      "x.ts: readFile(options.jwksFile, 'utf8')",
    ]);
  });

  it("no shipped code outside lib/secrets reads a secret from the environment or a file", () => {
    const reads: string[] = [];
    for (const path of shippedSources()) {
      const file = relative(packagePath(), path).split(sep).join("/");
      if (file.startsWith("lib/secrets/") || file === "lib/config/settings.ts") continue;
      reads.push(...secretReads(file, readFileSync(path, "utf8")));
    }
    expect(reads.filter((r) => !(r in allowed))).toEqual([]);
    // Every exception still names a real read.
    expect(Object.keys(allowed).filter((a) => !reads.includes(a))).toEqual([]);
  });
});
