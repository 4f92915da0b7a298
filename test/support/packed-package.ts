/**
 * The package as a user installs it: `npm pack` of this checkout (its `files`
 * and `exports`), installed into a fresh project with npm. `dist/` is built
 * first only when a source is newer than it (what `prepack` would do), and the
 * project's third-party dependencies are hard-linked from an earlier install
 * of the same dependency set when there is one, so npm extracts only the
 * agentmesh tarball itself; the first run installs everything from the npm
 * cache (or the registry).
 *
 * @example
 * const project = await installPackedPackage();
 * execFileSync("node", ["main.mjs"], { cwd: project.dir });
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildDist } from "./build-dist.js";

const exec = promisify(execFile);
const root = process.cwd();

export interface PackedProject {
  /** The project directory (package.json with "type": "module", node_modules/agentmesh). */
  dir: string;
  /** The tarball `npm pack` wrote. */
  tarball: string;
  close(): Promise<void>;
}

export async function installPackedPackage(): Promise<PackedProject> {
  const dir = await mkdtemp(join(tmpdir(), "agentmesh-pack-"));
  try {
    // `npm pack --ignore-scripts`: its prepack (`npm run build`) is buildDist's, done only when stale.
    const packed = await buildDist(root, () =>
      exec("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
        cwd: root,
        timeout: 60_000,
      }),
    );
    const tarball = join(dir, (JSON.parse(packed!.stdout) as { filename: string }[])[0]!.filename);
    const project = join(dir, "project");
    await mkdir(project);
    await writeFile(
      join(project, "package.json"),
      JSON.stringify({ name: "my-agents", private: true, type: "module" }),
    );
    const deps = await dependencyCache();
    if (existsSync(deps)) await exec("cp", ["-al", join(deps, "node_modules"), project]);
    await exec(
      "npm",
      [
        "install",
        tarball,
        existsSync(deps) ? "--offline" : "--prefer-offline",
        "--ignore-scripts",
        "--omit=optional",
        "--no-audit",
        "--no-fund",
      ],
      { cwd: project, timeout: 180_000 },
    );
    if (!existsSync(deps)) await saveDependencies(project, deps);
    return { dir: project, tarball, close: () => rm(dir, { recursive: true, force: true }) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Where an install of exactly this dependency set is kept. */
async function dependencyCache(): Promise<string> {
  const manifest = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
  const key = createHash("sha256")
    .update(JSON.stringify([manifest.dependencies, manifest.overrides]))
    .digest("hex")
    .slice(0, 16);
  return join(tmpdir(), `agentmesh-pack-deps-${key}`);
}

/** Keeps the project's third-party node_modules (not agentmesh) for the next run. */
async function saveDependencies(project: string, deps: string): Promise<void> {
  const staging = `${deps}.${process.pid}`;
  await mkdir(staging, { recursive: true });
  await exec("cp", ["-al", join(project, "node_modules"), staging]);
  for (const p of ["agentmesh", ".bin/agentmesh", ".package-lock.json"]) {
    await rm(join(staging, "node_modules", p), { recursive: true, force: true });
  }
  // Another run may have saved it meanwhile: then keep theirs.
  await rename(staging, deps).catch(() => rm(staging, { recursive: true, force: true }));
}
