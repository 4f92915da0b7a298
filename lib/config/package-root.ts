/**
 * The agentmesh package's root directory, however this module was loaded:
 * from the sources (tsx), from `dist/` (a published build) or from the
 * start-up bundle under `node_modules/.cache` (bin/agentmesh.js). Files that
 * ship beside the code (playbooks, the dashboard, the committed policy) are
 * found from here rather than from `import.meta.url`, whose directory differs
 * between those three.
 *
 * @example
 * const playbooks = packagePath("services", "planner", "playbooks");
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, "utf8")).name === "agentmesh") {
      return dir;
    }
    if (dirname(dir) === dir) throw new Error(`no agentmesh package.json above ${from}`);
  }
}

export const packageRoot = findRoot(dirname(fileURLToPath(import.meta.url)));

/** A path inside the package. */
export function packagePath(...segments: string[]): string {
  return join(packageRoot, ...segments);
}
