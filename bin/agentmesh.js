#!/usr/bin/env node
// Entry point of the `agentmesh` command. In a checkout it runs the TypeScript
// sources through tsx, so a stale `dist/` can never shadow them; a published
// package (no sources, `npm run build` output only) runs the built JavaScript.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "cli", "main.ts");
if (existsSync(source) && process.env.AGENTMESH_FROM_DIST !== "1") {
  const { register } = await import("tsx/esm/api");
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(join(root, "dist", "cli", "main.js")).href);
}
