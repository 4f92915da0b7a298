/**
 * The HTTP agent (`agent-http`): `http.fetch` against an allowlist of hosts,
 * with a timeout and a response size cap. Every hop is checked before it is
 * made — redirects are followed by hand — twice: the host name against the
 * host allowlist, then every address the name resolves to against the
 * address policy (`address-policy.ts`: no loopback, private, link-local or
 * metadata address unless its CIDR is allowlisted). The connection goes to
 * the address that was checked, so a name cannot resolve differently between
 * the check and the connect (DNS rebinding).
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `http.fetch` | `{ url, method? = GET, headers?, body?, timeoutMs? }` | `{ url, status, statusText, headers, body, bytes, truncated }` |
 *
 * Failures: a refused URL, host or address → PERMISSION_DENIED; a malformed
 * URL → INVALID_ARGUMENT; a 4xx answer (but 408 and 429) → `HTTP_<status>`;
 * a timeout, headers or body → DEADLINE_EXCEEDED; all of these are
 * non-retryable. A 5xx, 408 or 429 answer or a refused connection is retryable.
 * The body is cut at `maxBytes` of UTF-8 text so the result fits the bus.
 *
 * The allowlists come from `AGENTMESH_HTTP_ALLOW_HOSTS` (comma-separated host
 * names; `*.example.com` matches subdomains; empty means every request is
 * refused) and `AGENTMESH_HTTP_ALLOW_CIDRS` (ranges opened despite the policy).
 *
 * @example
 * const agent = createHttpAgent({ allowHosts: ["api.github.com", "*.example.com"] });
 */
import { lookup } from "node:dns/promises";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { AgentError, nonRetryable } from "../sdk/agent/agent-error.js";
import { type AgentDefinition, defineAgent } from "../sdk/agent/define-agent.js";
import { addressPolicy, allowCidrsFromEnv } from "./address-policy.js";
import { refusalsReported } from "./sandbox-refusal.js";

export interface HttpAgentOptions {
  /** Hosts requests may go to; `*.example.com` matches any subdomain. Default: `AGENTMESH_HTTP_ALLOW_HOSTS`. */
  allowHosts?: string[];
  /** Address ranges reachable despite the address policy, e.g. `10.1.0.0/16`. Default: `AGENTMESH_HTTP_ALLOW_CIDRS`. */
  allowCidrs?: string[];
  /** Largest response body kept, as UTF-8 text; the rest is cut and `truncated` set. Default 256 KiB, so a result fits the bus. */
  maxBytes?: number;
  /** Default and largest request timeout. Default 10 s, at most 60 s. */
  timeoutMs?: number;
  /** Redirects followed. Default 5. */
  maxRedirects?: number;
}

/** Whether `host` is on the list (case-insensitive; `*.x` matches subdomains of x, not x). */
export function hostAllowed(host: string, allowHosts: readonly string[]): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  return allowHosts.some((pattern) => {
    const p = pattern.trim().toLowerCase();
    if (p.startsWith("*.")) return h.endsWith(p.slice(1));
    return h === p;
  });
}

export function allowHostsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.AGENTMESH_HTTP_ALLOW_HOSTS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

interface FetchInput {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

/** Response headers kept, in bytes; the rest are dropped. */
const maxHeaderBytes = 16 * 1024;

export function createHttpAgent(options: HttpAgentOptions = {}): AgentDefinition {
  const allowHosts = options.allowHosts ?? allowHostsFromEnv();
  const addresses = addressPolicy(options.allowCidrs ?? allowCidrsFromEnv());
  const maxBytes = options.maxBytes ?? 256 * 1024;
  const maxTimeoutMs = Math.min(options.timeoutMs ?? 10_000, 60_000);
  const maxRedirects = options.maxRedirects ?? 5;

  /** Checks one hop and returns the address to connect to. */
  const check = async (url: URL): Promise<{ address: string; family: number }> => {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw nonRetryable(`only http and https URLs are allowed, not ${url.protocol}`, {
        code: "PERMISSION_DENIED",
      });
    }
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (!hostAllowed(host, allowHosts)) {
      throw nonRetryable(`host ${url.hostname} is not on the allowlist`, {
        code: "PERMISSION_DENIED",
        details: { host: url.hostname },
      });
    }
    let resolved: { address: string; family: number }[];
    try {
      resolved = isIP(host)
        ? [{ address: host, family: isIP(host) }]
        : await lookup(host, { all: true, verbatim: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTFOUND" || code === "ENODATA") {
        throw nonRetryable(`host ${host} does not resolve`, { code: "NOT_FOUND" });
      }
      throw new AgentError(`resolving ${host} failed: ${code ?? err}`, { code: "UNAVAILABLE" });
    }
    for (const a of resolved) {
      const why = addresses.denied(a.address);
      if (why) {
        throw nonRetryable(`host ${host} resolves to a ${why}, which is not allowed`, {
          code: "PERMISSION_DENIED",
          details: { host, address: a.address },
        });
      }
    }
    return resolved[0]!;
  };

  return defineAgent({
    name: "http",
    version: "1.0.0",
    owner: "agentmesh",
    description:
      "Fetches URLs on an allowlist of hosts (public addresses only unless allowlisted), with a timeout and a size cap.",
    labels: { network: "egress" },
    skills: {
      "http.fetch": {
        // POST, PUT, PATCH and DELETE change what an allowed host holds.
        sideEffect: "destructive",
        description:
          "Makes one HTTP request to an allowed host and returns status, headers and body text.",
        inputSchema: {
          type: "object",
          properties: {
            url: { type: "string", format: "uri", maxLength: 8_192 },
            method: { enum: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], default: "GET" },
            headers: {
              type: "object",
              additionalProperties: { type: "string", maxLength: 8_192 },
              maxProperties: 64,
            },
            body: { type: "string", maxLength: 1 << 20 },
            timeoutMs: { type: "integer", minimum: 1, maximum: 60_000 },
          },
          required: ["url"],
          additionalProperties: false,
        },
        tags: ["network"],
        handler: async (input: FetchInput, ctx) => {
          let url: URL;
          try {
            url = new URL(input.url);
          } catch {
            throw nonRetryable("the url is not a valid absolute URL", { code: "INVALID_ARGUMENT" });
          }
          let method = input.method ?? "GET";
          let body = method === "GET" || method === "HEAD" ? undefined : input.body;
          const timeoutMs = Math.min(input.timeoutMs ?? maxTimeoutMs, maxTimeoutMs);
          const timeout = AbortSignal.timeout(timeoutMs);
          const signal = AbortSignal.any([ctx.signal, timeout]);
          for (let hop = 0; ; hop++) {
            // Every hop, redirects included: a refused one is also a security event.
            const target = await refusalsReported(
              ctx,
              "http",
              (e) => e.code === "PERMISSION_DENIED",
              () => check(url),
            );
            let answer: Answer;
            try {
              answer = await send(url, target, method, input.headers ?? {}, body, signal, maxBytes);
            } catch (err) {
              if (timeout.aborted) {
                throw nonRetryable(`request timed out after ${timeoutMs} ms`, {
                  code: "DEADLINE_EXCEEDED",
                  details: { timeoutMs },
                });
              }
              if (ctx.signal.aborted) throw err;
              const code = (err as NodeJS.ErrnoException).code;
              throw new AgentError(`request failed: ${code ?? (err as Error).message}`, {
                code: "UNAVAILABLE",
              });
            }
            const location = answer.headers.location;
            if (answer.status >= 300 && answer.status < 400 && location) {
              if (hop >= maxRedirects) {
                throw nonRetryable(`more than ${maxRedirects} redirects`, {
                  code: "TOO_MANY_REDIRECTS",
                });
              }
              try {
                url = new URL(location, url);
              } catch {
                throw nonRetryable("a redirect gave an invalid location", {
                  code: "INVALID_ARGUMENT",
                });
              }
              if (
                answer.status === 303 ||
                ((answer.status === 301 || answer.status === 302) && method === "POST")
              ) {
                method = "GET";
                body = undefined;
              }
              continue;
            }
            return classify(url, answer);
          }
        },
      },
    },
  });
}

interface Answer {
  status: number;
  statusText: string;
  headers: Record<string, string>;
  body: string;
  bytes: number;
  truncated: boolean;
}

/** 4xx ends the step (but 408 and 429, which say "later"); 5xx is tried again. */
function classify(url: URL, a: Answer) {
  const result = { url: url.toString(), ...a };
  if (a.status >= 400 && a.status !== 408 && a.status !== 429 && a.status < 500) {
    throw nonRetryable(`${url.host} answered ${a.status} ${a.statusText}`, {
      code: `HTTP_${a.status}`,
      details: { status: a.status },
    });
  }
  if (a.status >= 500 || a.status === 408 || a.status === 429) {
    throw new AgentError(`${url.host} answered ${a.status} ${a.statusText}`, {
      code: `HTTP_${a.status}`,
      details: { status: a.status },
    });
  }
  return result;
}

/** One request, connected to the checked address whatever the name resolves to now. */
function send(
  url: URL,
  target: { address: string; family: number },
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
  maxBytes: number,
): Promise<Answer> {
  const pinned: LookupFunction = (_host, opts, cb) => {
    if (opts.all) cb(null, [{ address: target.address, family: target.family }]);
    else cb(null, target.address, target.family);
  };
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<Answer>((resolve, reject) => {
    const req = request(
      url,
      { method, headers: { ...headers, host: url.host }, lookup: pinned, signal },
      (res) => readCapped(res, maxBytes).then(resolve, reject),
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Reads at most `maxBytes` of the body as UTF-8 text, then stops the download. */
function readCapped(res: IncomingMessage, maxBytes: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let truncated = false;
    const finish = () => {
      // Cut the decoded text, not the bytes: invalid bytes decode to three-byte U+FFFD.
      let text = new TextDecoder().decode(Buffer.concat(chunks));
      if (Buffer.byteLength(text) > maxBytes) {
        text = Buffer.from(text)
          .subarray(0, maxBytes)
          .toString("utf8")
          .replace(/\uFFFD$/, "");
        truncated = true;
      }
      const headers: Record<string, string> = {};
      let headerBytes = 0;
      for (const [key, value] of Object.entries(res.headers)) {
        const v = Array.isArray(value) ? value.join(", ") : (value ?? "");
        headerBytes += key.length + v.length;
        if (headerBytes > maxHeaderBytes) break;
        headers[key] = v;
      }
      resolve({
        status: res.statusCode ?? 0,
        statusText: res.statusMessage ?? "",
        headers,
        body: text,
        bytes,
        truncated,
      });
    };
    res.on("data", (chunk: Buffer) => {
      if (truncated) return;
      const room = maxBytes - bytes;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room));
        bytes += room;
        truncated = true;
        res.destroy();
        finish();
        return;
      }
      chunks.push(chunk);
      bytes += chunk.length;
    });
    res.on("end", () => {
      if (!truncated) finish();
    });
    res.on("error", (err) => {
      if (!truncated) reject(err);
    });
    res.on("aborted", () => {
      if (!truncated) reject(new Error("response aborted"));
    });
  });
}

export const httpAgent = (): AgentDefinition => createHttpAgent();
