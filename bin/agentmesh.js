#!/usr/bin/env node
// Entry point of the `agentmesh` command. In a checkout it runs the TypeScript
// sources, bundled and cached by bin/source-bundle.js, so a stale `dist/` can
// never shadow them; `bench` runs them through tsx instead, because its load
// workers import source files. A published package (no sources, `npm run
// build` output only) runs the built JavaScript.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "cli", "main.ts");
if (!existsSync(source) || process.env.AGENTMESH_FROM_DIST === "1") {
  await import(pathToFileURL(join(root, "dist", "cli", "main.js")).href);
} else if (process.argv[2] === "bench") {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(source).href);
} else {
  const { sourceBundle } = await import("./source-bundle.js");
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(await sourceBundle(root)).href);
}
