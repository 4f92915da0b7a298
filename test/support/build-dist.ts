/**
 * `dist/` for the tests that run the built package (the image layout, the
 * packed tarball): `npm run build` only when a source is newer than the last
 * build, and one build at a time, since test files run in parallel and a
 * build writing `dist/` under another test's feet would hand it half-written
 * files. `use` runs while the lock is held (e.g. `npm pack`, which reads all
 * of `dist/`).
 *
 * @example
 * await buildDist(root, () => exec("npm", ["pack"]));
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** What `tsconfig.build.json` and `bin/build-dashboard.js` compile. */
const sourceDirs = ["gen", "lib", "services", "gateway", "agents", "sdk", "cli"];

export async function buildDist<T>(root: string, use?: () => Promise<T>): Promise<T | undefined> {
  const lock = join(root, "node_modules", ".cache", "agentmesh-build.lock");
  mkdirSync(dirname(lock), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    const stamp = join(root, "dist", ".build-stamp");
    const builtAt = mtime(stamp);
    if (sourceDirs.some((d) => newerSource(join(root, d), builtAt))) {
      const started = new Date();
      execFileSync("npm", ["run", "-s", "build"], { cwd: root, stdio: "pipe" });
      // The start of the build: a source saved while it ran makes the next call build again.
      writeFileSync(stamp, "");
      utimesSync(stamp, started, started);
    }
    return await use?.();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function newerSource(dir: string, than: number): boolean {
  return readdirSync(dir, { withFileTypes: true, recursive: true }).some(
    (e) =>
      e.isFile() &&
      /\.(ts|js|html|css)$/.test(e.name) &&
      !e.name.endsWith(".test.ts") &&
      mtime(join(e.parentPath, e.name)) > than,
  );
}
