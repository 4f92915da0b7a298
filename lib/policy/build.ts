/**
 * Compiles the Rego sources to the committed `policy.wasm` with the `opa` CLI.
 *
 * Only the builtins in `policies/capabilities.json` (those the JavaScript
 * opa-wasm runtime implements) are allowed, so a policy using `http.send` or
 * `io.jwt.*` fails here rather than at run time. The output is
 * byte-reproducible: same sources and same `opa` version, same bytes.
 *
 * @example
 * const { wasmPath } = await buildPolicy({ dir: "policies" });
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { Code, MeshError } from "../errors/mesh-error.js";
import { decisionEntrypoint } from "./bundle.js";

export interface BuildPolicyOptions {
  /** The policy directory. Default `policies`. */
  dir?: string;
  /** Where `policy.wasm` goes. Default `<dir>/policy.wasm`. */
  out?: string;
  /** The `opa` binary. Default `$OPA` or `opa` on PATH (CI installs it in `~/go/bin`). */
  opa?: string;
}

export interface BuildPolicyResult {
  wasmPath: string;
  /** Bytes written. */
  size: number;
  /** Rego files compiled, relative to the directory above `dir`. */
  sources: string[];
}

/**
 * Runs `opa build -t wasm -e agentmesh/authz/decision --capabilities
 * <dir>/capabilities.json <rego files> <dir>/data.json` and writes the
 * module. Test files (`*_test.rego`) are left out. Throws FAILED_PRECONDITION
 * with opa's message when the policy does not compile.
 */
export async function buildPolicy(options: BuildPolicyOptions = {}): Promise<BuildPolicyResult> {
  const dir = resolve(options.dir ?? "policies");
  const out = resolve(options.out ?? join(dir, "policy.wasm"));
  const opa = options.opa ?? process.env.OPA ?? "opa";
  // opa records source locations in the module: run it from the directory
  // above the policies with relative paths, so the bytes do not depend on
  // where the checkout lives or where the command was started.
  const cwd = dirname(dir);
  const sources = (await regoFiles(dir)).map((f) => relative(cwd, f)).sort();
  if (sources.length === 0) {
    throw new MeshError(Code.FailedPrecondition, `no .rego files under ${dir}`);
  }
  const tmp = await mkdtemp(join(tmpdir(), "agentmesh-policy-"));
  try {
    const bundlePath = join(tmp, "bundle.tar.gz");
    await run(
      opa,
      [
        "build",
        "-t",
        "wasm",
        "-e",
        decisionEntrypoint,
        "--capabilities",
        relative(cwd, join(dir, "capabilities.json")),
        "-o",
        bundlePath,
        ...sources,
        relative(cwd, join(dir, "data.json")),
      ],
      cwd,
    );
    const files = untar(gunzipSync(await readFile(bundlePath)));
    const wasm = files.get("policy.wasm");
    if (!wasm) throw new MeshError(Code.Internal, "opa build produced no policy.wasm");
    await writeFile(out, wasm);
    return { wasmPath: out, size: wasm.length, sources };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function regoFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".rego") && !e.name.endsWith("_test.rego"))
    .map((e) => join(e.parentPath, e.name));
}

/** Runs a command; rejects with FAILED_PRECONDITION carrying its stderr. */
export function run(command: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(command, args, { cwd, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolvePromise(stdout);
      const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
      reject(
        new MeshError(
          Code.FailedPrecondition,
          missing
            ? `${command} not found: install it with .ci/tools.sh (go install github.com/open-policy-agent/opa@v1.22.3) or set OPA`
            : `${command} ${args[0]} failed:\n${(stderr || stdout).trim()}`,
          { cause: err },
        ),
      );
    });
  });
}

/** The regular files of a (ustar) tar archive, by name without a leading slash. */
export function untar(archive: Uint8Array): Map<string, Buffer> {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const files = new Map<string, Buffer>();
  let offset = 0;
  while (offset + 512 <= buf.length) {
    const header = buf.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header
        .subarray(start, start + length)
        .toString("utf8")
        .replace(/\0.*$/s, "");
    const prefix = field(345, 155);
    const name = (prefix ? `${prefix}/` : "") + field(0, 100);
    const size = Number.parseInt(field(124, 12).trim() || "0", 8);
    const type = field(156, 1);
    const body = offset + 512;
    if (type === "0" || type === "")
      files.set(name.replace(/^\/+/, ""), buf.subarray(body, body + size));
    offset = body + Math.ceil(size / 512) * 512;
  }
  return files;
}
