#!/usr/bin/env node
// The last step of `npm run build`: the dashboard's browser script bundled once
// into dist/gateway/web/app.js, which the built gateway serves as it is (an
// installed package or the container image has no compiler to bundle it with).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const { bundleDashboardScript } = await import(
  pathToFileURL(join(root, "dist", "gateway", "dashboard.js")).href
);
const out = join(root, "dist", "gateway", "web", "app.js");
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, await bundleDashboardScript());
