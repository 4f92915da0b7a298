/**
 * Serves the dashboard (`gateway/web/`): the page, its stylesheet, and the
 * script bundled on first request with esbuild (the generated client and
 * `@connectrpc/connect-web` included) and kept in memory. Also the two views
 * the public API has no RPC for yet — recent policy denials and queue depth
 * per capability — as authenticated JSON under `/api/v1/`.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { QueueStats } from "../lib/bus/job-bus.js";
import { packagePath } from "../lib/config/package-root.js";
import { MeshError } from "../lib/errors/mesh-error.js";
import { effectiveRoles } from "./admin-service.js";
import type { Authenticate } from "./authenticate.js";
import type { DenialLog } from "./denial-log.js";
import type { NodeRequest, NodeResponse } from "./http-edge.js";

const webDir = packagePath("gateway", "web");

export interface DashboardOptions {
  authenticate: Authenticate;
  denials: DenialLog;
  /** Queue figures per capability (the job bus's `stats`); absent means not available here. */
  queueStats?: (() => Promise<QueueStats[]>) | undefined;
}

/** A handler for dashboard paths; returns false for paths it does not serve. */
export function dashboardHandler(options: DashboardOptions) {
  let bundle: Promise<string> | undefined;
  const files = new Map<string, Promise<Buffer>>();
  const file = (name: string) => {
    let f = files.get(name);
    if (!f) {
      f = readFile(join(webDir, name));
      files.set(name, f);
    }
    return f;
  };
  return (req: NodeRequest, res: NodeResponse): boolean => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    switch (path) {
      case "/":
      case "/index.html":
        void send(res, file("index.html"), "text/html; charset=utf-8", true);
        return true;
      case "/style.css":
        void send(res, file("style.css"), "text/css; charset=utf-8");
        return true;
      case "/app.js":
        bundle ??= buildBundle().catch((err: unknown) => {
          bundle = undefined;
          throw err;
        });
        void send(res, bundle, "text/javascript; charset=utf-8");
        return true;
      case "/api/v1/denials":
      case "/api/v1/queues":
        void json(req, res, path, options);
        return true;
      default:
        return false;
    }
  };
}

async function send(
  res: NodeResponse,
  body: Promise<Buffer | string>,
  type: string,
  page = false,
): Promise<void> {
  try {
    const data = await body;
    const headers: Record<string, string> = { "Content-Type": type, "Cache-Control": "no-cache" };
    if (page) {
      // Scripts and calls only from this origin; no inline script, no framing.
      headers["Content-Security-Policy"] =
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
    }
    res.writeHead(200, headers);
    res.end(data);
  } catch {
    res.writeHead(500, { "Content-Type": "text/plain" });
    res.end("dashboard asset unavailable\n");
  }
}

async function json(
  req: NodeRequest,
  res: NodeResponse,
  path: string,
  options: DashboardOptions,
): Promise<void> {
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
    res.end(JSON.stringify(body));
  };
  try {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string" && !k.startsWith(":")) headers.set(k, v);
    }
    const principal = await options.authenticate(headers);
    if (path === "/api/v1/denials") {
      // A platform admin sees every tenant's denials, anyone else only their own.
      const all = effectiveRoles(principal.roles).has("platform.admin");
      reply(200, { denials: options.denials.list(all ? undefined : principal.tenantId) });
      return;
    }
    if (!options.queueStats) {
      reply(200, { available: false, queues: [] });
      return;
    }
    reply(200, { available: true, queues: await options.queueStats() });
  } catch (err) {
    const e = MeshError.from(err);
    reply(e.code === 16 ? 401 : 503, { code: e.codeName.toLowerCase(), message: e.message });
  }
}

async function buildBundle(): Promise<string> {
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [join(webDir, "app.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error("esbuild produced no output");
  return out.text;
}
