/**
 * Serves the tool catalog (`agentmesh catalog`, committed in `docs/catalog/`)
 * at `/catalog` (Markdown) and `/catalog.json`: documentation of the
 * built-in capabilities and goal kinds, public like the dashboard page that
 * links to it. Read once, on first request.
 *
 * @example
 * const catalog = catalogHandler();
 * if (catalog(req, res)) return;
 */
import { readFile } from "node:fs/promises";
import { packagePath } from "../lib/config/package-root.js";
import type { NodeRequest, NodeResponse } from "./http-edge.js";

const files: Record<string, { name: string; type: string }> = {
  "/catalog": { name: "catalog.md", type: "text/markdown; charset=utf-8" },
  "/catalog.md": { name: "catalog.md", type: "text/markdown; charset=utf-8" },
  "/catalog.json": { name: "catalog.json", type: "application/json" },
};

/** A handler for the catalog's paths; returns false for any other. */
export function catalogHandler(dir = packagePath("docs", "catalog")) {
  const read = new Map<string, Promise<Buffer>>();
  return (req: NodeRequest, res: NodeResponse): boolean => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const file = files[path];
    if (file === undefined || (req.method !== "GET" && req.method !== "HEAD")) return false;
    let body = read.get(file.name);
    if (!body) {
      body = readFile(`${dir}/${file.name}`);
      read.set(file.name, body);
    }
    body.then(
      (data) => {
        res.writeHead(200, { "Content-Type": file.type, "Cache-Control": "no-cache" });
        if (req.method === "HEAD") res.end();
        else res.end(data);
      },
      () => {
        read.delete(file.name);
        res.writeHead(404, { "Content-Type": "text/plain" });
        res.end("catalog not found (agentmesh catalog writes it)\n");
      },
    );
    return true;
  };
}
