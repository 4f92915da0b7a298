/**
 * Builds the policy bundle (`bundles/agentmesh.tar.gz`) with the `opa` CLI,
 * refusing anything that would fail in production:
 *
 * 1. `opa test <dir>`: every Rego test, the examples' included, must pass;
 * 2. `opa build -t wasm` of the sources (not tests, not `examples/`) and
 *    `data.json`, allowing only the builtins in `capabilities.json` (those the
 *    JavaScript opa-wasm runtime implements), with the content hash of module
 *    and data as the manifest's revision;
 * 3. the bundle must load and answer the reload corpus (`corpus.ts`);
 * 4. it is written to a temporary file and renamed into place, so a watching
 *    process never reads half a bundle.
 *
 * The output is byte-reproducible: same sources and `opa` version, same bytes.
 *
 * @example
 * const { bundlePath, revision } = await buildPolicy({ dir: "policies" });
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { Code, MeshError } from "../errors/mesh-error.js";
import {
  bundleRevision,
  decisionEntrypoint,
  loadBundleArchive,
  unpackBundleArchive,
} from "./bundle.js";
import { builtinCorpus, checkCorpus } from "./corpus.js";

export interface BuildPolicyOptions {
  /** The policy directory. Default `policies`. */
  dir?: string;
  /**
   * Where the bundle goes. Default `bundles/agentmesh.tar.gz` beside `dir`
   * (outside it: `opa test <dir>` would load a bundle inside as data).
   */
  out?: string;
  /** The `opa` binary. Default `$OPA` or `opa` on PATH (CI installs it in `~/go/bin`). */
  opa?: string;
}

export interface BuildPolicyResult {
  bundlePath: string;
  /** Bytes written. */
  size: number;
  /** The manifest's revision. */
  revision: string;
  /** Rego files compiled, relative to the directory above `dir`. */
  sources: string[];
  /** Rego tests that passed. */
  tests: number;
  /** Corpus inputs the bundle answered. */
  corpus: number;
}

/** Test files and the guide's examples stay out of the bundle. */
function isSource(dir: string, file: string): boolean {
  return (
    file.endsWith(".rego") &&
    !file.endsWith("_test.rego") &&
    !relative(dir, file).split(sep).includes("examples")
  );
}

/**
 * Tests, builds, checks and writes the bundle. Throws FAILED_PRECONDITION
 * with opa's message when a test fails or the policy does not compile, and
 * with the failing input when the bundle errors on the corpus; nothing is
 * written then.
 */
export async function buildPolicy(options: BuildPolicyOptions = {}): Promise<BuildPolicyResult> {
  const dir = resolve(options.dir ?? "policies");
  const out = resolve(options.out ?? join(dirname(dir), "bundles", "agentmesh.tar.gz"));
  const opa = options.opa ?? process.env.OPA ?? "opa";
  const tests = await runTests(opa, basename(dir), dirname(dir));
  const { archive, revision, sources } = await compileBundle({ dir, opa });
  const bundle = await loadBundleArchive(archive);
  const corpus = checkCorpus(bundle, builtinCorpus(bundle.data));
  await mkdir(dirname(out), { recursive: true });
  const staged = `${out}.${process.pid}.tmp`;
  await writeFile(staged, archive);
  await rename(staged, out);
  return { bundlePath: out, size: archive.length, revision, sources, tests, corpus };
}

/**
 * Only the compile step of `buildPolicy`: `opa build` of the sources and
 * data into a bundle archive stamped with its revision. No tests, no corpus:
 * for tests that need a bundle the build would refuse.
 */
export async function compileBundle(options: {
  dir: string;
  opa?: string;
}): Promise<{ archive: Buffer; revision: string; sources: string[] }> {
  const dir = resolve(options.dir);
  const opa = options.opa ?? process.env.OPA ?? "opa";
  // opa records source locations in the module: run it from the directory
  // above the policies with relative paths, so the bytes do not depend on
  // where the checkout lives or where the command was started.
  const cwd = dirname(dir);
  const sources = (await regoFiles(dir))
    .filter((f) => isSource(dir, f))
    .map((f) => relative(cwd, f))
    .sort();
  if (sources.length === 0) {
    throw new MeshError(Code.FailedPrecondition, `no .rego files under ${dir}`);
  }
  const tmp = await mkdtemp(join(tmpdir(), "agentmesh-policy-"));
  try {
    const build = async (output: string, revision?: string) => {
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
          ...(revision ? ["--revision", revision] : []),
          "-o",
          output,
          ...sources,
          relative(cwd, join(dir, "data.json")),
        ],
        cwd,
      );
      return readFile(output);
    };
    // The revision is the content hash of what runs: build once to learn it, then stamp it.
    const first = unpackBundleArchive(await build(join(tmp, "unstamped.tar.gz")));
    const revision = bundleRevision(first.wasm, first.data);
    const archive = await build(join(tmp, "bundle.tar.gz"), revision);
    return { archive, revision, sources };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Runs `opa test` on the directory; resolves with the number of tests, rejects with the failures. */
async function runTests(opa: string, dir: string, cwd: string): Promise<number> {
  let report: string;
  try {
    report = await run(opa, ["test", dir, "--format", "json"], cwd);
  } catch (err) {
    const e = err as MeshError;
    throw new MeshError(
      Code.FailedPrecondition,
      `Rego tests failed; no bundle was built:\n${summarizeFailures(e.message)}`,
      { cause: err },
    );
  }
  try {
    return (JSON.parse(report) as unknown[]).length;
  } catch {
    return 0;
  }
}

/** From `opa test --format json` output, the failing tests and their errors, one line each. */
function summarizeFailures(message: string): string {
  const start = message.indexOf("[");
  if (start === -1) return message;
  try {
    const results = JSON.parse(message.slice(start)) as {
      package: string;
      name: string;
      fail?: boolean;
      error?: { message?: string; location?: { file?: string; row?: number } };
    }[];
    const lines = results
      .filter((r) => r.fail || r.error)
      .map((r) => {
        const where = r.error?.location
          ? ` (${r.error.location.file}:${r.error.location.row})`
          : "";
        return `${r.package}.${r.name}: ${r.error?.message ?? "FAIL"}${where}`;
      });
    if (lines.length === 0) return message;
    const shown = lines.slice(0, 10);
    if (lines.length > shown.length) shown.push(`... and ${lines.length - shown.length} more`);
    return shown.join("\n");
  } catch {
    return message;
  }
}

async function regoFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
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
