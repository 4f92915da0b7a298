/**
 * Serves the dashboard (`gateway/web/`): the page, its stylesheet, and the
 * script bundled on first request with esbuild (the generated client and
 * `@connectrpc/connect-web` included) and kept in memory. Also the reads the
 * public API has no RPC for yet, as JSON under `/api/v1/`, admitted like any
 * call (credentials and the tenant's rate): who the caller is (`me`: tenant
 * and effective roles, so the page shows only the actions it may take),
 * recent policy denials, queue depth per capability (with the last minutes
 * the gateway sampled, `queue-history.ts`), and `policy/try`, which
 * asks the live policy about a hypothetical call without making it. Queue
 * figures and policy tries are mesh-wide, so they need the operator role
 * (`platform.admin`); denials are the caller's tenant's.
 */
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, ScalarType } from "@bufbuild/protobuf";
import { type Principal, PrincipalSchema } from "../gen/agentmesh/v1/common_pb.js";
import type { QueueStats } from "../lib/bus/job-bus.js";
import { packagePath } from "../lib/config/package-root.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import type { Authorizer, PeerIdentity } from "../lib/rpc/authorizer.js";
import { effectiveRoles } from "./admin-service.js";
import type { NodeRequest, NodeResponse } from "./http-edge.js";
import { publicMethods } from "./public-api.js";
import type { QueueHistory } from "./queue-history.js";
import type { RecentDecisions } from "./recent-decisions.js";

const webDir = packagePath("gateway", "web");

/** The role that may read mesh-wide figures. */
export const operatorRole = "platform.admin";

/** HTTP status of each refusal. */
const httpStatus: Partial<Record<Code, number>> = {
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
};

export interface DashboardOptions {
  /** Authenticates the caller and takes a token of its tenant's rate (`admitCaller`). */
  admit: (headers: Headers) => Promise<Principal>;
  decisions: RecentDecisions;
  /** Queue figures per capability (the job bus's `stats`); absent means not available here. */
  queueStats?: (() => Promise<QueueStats[]>) | undefined;
  /** The last minutes of those figures, sampled by the gateway, so charts open with history. */
  queueHistory?: QueueHistory | undefined;
  /** Asks the live policy about a call as the gateway would (`policy/try`); absent means not here. */
  authorizer?: Authorizer | undefined;
  /** The gateway's own identity, the peer the policy sees. */
  peer?: PeerIdentity | undefined;
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
        bundle ??= dashboardScript().catch((err: unknown) => {
          bundle = undefined;
          throw err;
        });
        void send(res, bundle, "text/javascript; charset=utf-8");
        return true;
      case "/api/v1/me":
      case "/api/v1/denials":
      case "/api/v1/queues":
      case "/api/v1/policy/try":
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
  const reply = (status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
      ...headers,
    });
    res.end(JSON.stringify(body));
  };
  try {
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === "string" && !k.startsWith(":")) headers.set(k, v);
    }
    const principal = await options.admit(headers);
    const roles = effectiveRoles(principal.roles);
    const operator = roles.has(operatorRole);
    if (path === "/api/v1/me") {
      reply(200, { tenantId: principal.tenantId, subject: principal.subject, roles: [...roles] });
      return;
    }
    if (path === "/api/v1/denials") {
      // An operator sees every tenant's denials, anyone else only their own.
      const denials = options.decisions.list({
        ...(operator ? {} : { tenantId: principal.tenantId }),
        deniedOnly: true,
        limit: 50,
      });
      // Who, what and why; what the policy read of each call is AdminService/ListPolicyDecisions'.
      reply(200, {
        denials: denials.map(({ time, tenantId, subject, method, reason }) => ({
          time,
          tenantId,
          subject,
          method,
          reason,
        })),
      });
      return;
    }
    if (path === "/api/v1/policy/try") {
      if (!operator) {
        throw new MeshError(Code.PermissionDenied, `policy tries need the ${operatorRole} role`);
      }
      reply(200, await tryPolicy(options, new URL(req.url ?? "/", "http://x").searchParams));
      return;
    }
    if (!operator) {
      throw new MeshError(Code.PermissionDenied, `queue statistics need the ${operatorRole} role`);
    }
    if (!options.queueStats) {
      reply(200, { available: false, queues: [] });
      return;
    }
    const history = options.queueHistory;
    reply(200, {
      available: true,
      sampleIntervalMs: history?.intervalMs ?? 0,
      historyMs: history?.windowMs ?? 0,
      queues: (await options.queueStats()).map((row) => ({
        ...row,
        history: history?.series(row.capability) ?? { depth: [], lag: [], ackPending: [] },
      })),
    });
  } catch (err) {
    const e = MeshError.from(err);
    const retryAfterMs = e.details.retryAfterMs;
    reply(
      httpStatus[e.code] ?? 503,
      { code: e.codeName.toLowerCase(), message: e.message },
      typeof retryAfterMs === "number"
        ? { "Retry-After": String(Math.max(1, Math.ceil(retryAfterMs / 1000))) }
        : {},
    );
  }
}

/** Longest value of one `policy/try` parameter. */
const maxTryParam = 256;

/**
 * The live policy's decision on a hypothetical public call: `method`
 * (`agentmesh.v1.ExecutorService/SubmitGoal`), the caller's `tenant` and
 * comma-separated `roles`, and the request's `kind` and `capability`, if it
 * has such fields. Nothing is called, nothing is recorded.
 */
async function tryPolicy(options: DashboardOptions, q: URLSearchParams) {
  if (!options.authorizer || !options.peer) return { available: false };
  const param = (name: string) => {
    const v = q.get(name) ?? "";
    if (v.length > maxTryParam) {
      throw new MeshError(Code.InvalidArgument, `${name} is longer than ${maxTryParam} characters`);
    }
    return v;
  };
  const name = param("method");
  const method = publicMethods().find(
    (m) => `${m.method.parent.typeName}/${m.method.name}` === name,
  )?.method;
  if (!method) throw new MeshError(Code.InvalidArgument, `method: no public method ${name}`);
  const tenantId = param("tenant");
  if (!tenantId) throw new MeshError(Code.InvalidArgument, "tenant: required");
  const roles = param("roles")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const fields: Record<string, string> = {};
  for (const f of method.input.fields) {
    if (f.fieldKind !== "scalar" || f.scalar !== ScalarType.STRING) continue;
    if (f.name === "tenant_id") fields[f.localName] = tenantId;
    else if (f.name === "kind" || f.name === "capability") fields[f.localName] = param(f.name);
  }
  const decision = await options.authorizer({
    peer: options.peer,
    principal: create(PrincipalSchema, { tenantId, subject: "policy-try", roles }),
    method,
    request: create(method.input, fields as never),
  });
  return { available: true, allow: decision.allow, reason: decision.reason };
}

/**
 * The script `npm run build` bundled into `dist/gateway/web/app.js` beside
 * this module (so an installed package or the image needs no compiler), or,
 * in a checkout, the sources bundled now.
 */
async function dashboardScript(): Promise<string> {
  const prebuilt = join(dirname(fileURLToPath(import.meta.url)), "web", "app.js");
  return readFile(prebuilt, "utf8").catch(() => bundleDashboardScript());
}

/** Bundles `gateway/web/app.ts` (and what it imports) into one browser script. */
export async function bundleDashboardScript(): Promise<string> {
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
