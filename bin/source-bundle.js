// The checkout's CLI as one esbuild bundle, cached under
// node_modules/.cache/agentmesh/<fingerprint>/ (or AGENTMESH_BUNDLE_DIR, which
// must lie inside the package so the dependencies resolve) and rebuilt
// (~0.3 s) whenever a source file changes. Loading the ~300 source files one by one through tsx's
// loader thread took about as long as starting the whole mesh; the bundle
// loads in one go. Dependencies stay external (Node loads them as usual), and
// files shipped beside the code are found from the package root
// (lib/config/package-root.ts), so the bundle's location does not matter.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

/** Folders whose TypeScript the CLI can import (tests excluded). */
const sourceDirs = ["cli", "lib", "services", "gateway", "sdk", "agents", "gen", "bench"];
/** Bundles unused this long are pruned when a new one is built. */
const pruneAfterMs = 24 * 60 * 60 * 1000;

/** Path and mtime/size of every source file: changes whenever any source does. */
function fingerprint(root) {
  const hash = createHash("sha256");
  const visit = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== "node_modules") visit(path);
      } else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) {
        const s = statSync(path);
        hash.update(`${path}\0${s.mtimeMs}\0${s.size}\n`);
      }
    }
  };
  for (const d of sourceDirs) visit(join(root, d));
  return hash.digest("hex").slice(0, 16);
}

/** The bundle's entry file for the sources under `root`, built if missing. */
export async function sourceBundle(root) {
  const cache =
    process.env.AGENTMESH_BUNDLE_DIR || join(root, "node_modules", ".cache", "agentmesh");
  const dir = join(cache, fingerprint(root));
  const entry = join(dir, "main.js");
  try {
    statSync(entry);
    return entry;
  } catch {
    // not built yet
  }
  const { build } = await import("esbuild");
  // Built aside and renamed into place, so concurrent first runs never see half a bundle.
  mkdirSync(cache, { recursive: true });
  const staging = `${dir}.${process.pid}.tmp`;
  await build({
    entryPoints: [join(root, "cli", "main.ts")],
    outdir: staging,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    sourcemap: "linked",
    logLevel: "error",
  });
  try {
    renameSync(staging, dir);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another process won the race
  }
  prune(cache, dir);
  return entry;
}

function prune(cache, keep) {
  for (const name of readdirSync(cache)) {
    const path = join(cache, name);
    if (path === keep) continue;
    try {
      if (Date.now() - statSync(path).mtimeMs > pruneAfterMs) {
        rmSync(path, { recursive: true, force: true });
      }
    } catch {
      // pruned by another process meanwhile
    }
  }
}
