/**
 * The shipped source files (what `npm run build` compiles, plus the bin
 * scripts), for tests that check every file the mesh runs: the settings
 * registry and the secrets guard.
 *
 * @example
 * for (const path of shippedSources()) check(readFileSync(path, "utf8"));
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { packagePath } from "../config/package-root.js";

export function shippedSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (name !== "node_modules" && name !== "web") walk(path);
      } else if (/\.(ts|js|mjs)$/.test(name) && !/\.test\.ts$/.test(name)) out.push(path);
    }
  };
  for (const dir of ["lib", "services", "gateway", "agents", "sdk", "cli", "bin"]) {
    walk(packagePath(dir));
  }
  return out;
}
