/**
 * The HTTP agent (`agent-http`): `http.fetch` against an allowlist of hosts,
 * with a timeout and a response size cap. Redirects are followed by hand so
 * every hop is checked against the allowlist.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `http.fetch` | `{ url, method? = GET, headers?, body?, timeoutMs? }` | `{ url, status, statusText, headers, body, bytes, truncated }` |
 *
 * The allowlist comes from `AGENTMESH_HTTP_ALLOW_HOSTS` (comma-separated host
 * names; `*.example.com` matches subdomains); empty means every request is refused.
 *
 * @example
 * const agent = createHttpAgent({ allowHosts: ["api.github.com", "*.example.com"] });
 */
import { AgentError, nonRetryable } from "../sdk/agent/agent-error.js";
import { type AgentDefinition, defineAgent } from "../sdk/agent/define-agent.js";

export interface HttpAgentOptions {
  /** Hosts requests may go to; `*.example.com` matches any subdomain. Default: `AGENTMESH_HTTP_ALLOW_HOSTS`. */
  allowHosts?: string[];
  /** Largest response body kept; the rest is cut and `truncated` set. Default 1 MiB. */
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

export function createHttpAgent(options: HttpAgentOptions = {}): AgentDefinition {
  const allowHosts = options.allowHosts ?? allowHostsFromEnv();
  const maxBytes = options.maxBytes ?? 1 << 20;
  const maxTimeoutMs = Math.min(options.timeoutMs ?? 10_000, 60_000);
  const maxRedirects = options.maxRedirects ?? 5;

  const check = (url: URL) => {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw nonRetryable(`only http and https URLs are allowed, not ${url.protocol}`, {
        code: "PERMISSION_DENIED",
      });
    }
    if (!hostAllowed(url.hostname, allowHosts)) {
      throw nonRetryable(`host ${url.hostname} is not on the allowlist`, {
        code: "PERMISSION_DENIED",
        details: { host: url.hostname },
      });
    }
  };

  return defineAgent({
    name: "http",
    version: "1.0.0",
    owner: "agentmesh",
    description: "Fetches URLs on an allowlist of hosts, with a timeout and a size cap.",
    labels: { network: "egress" },
    skills: {
      "http.fetch": {
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
          let url = new URL(input.url);
          const method = input.method ?? "GET";
          const timeoutMs = Math.min(input.timeoutMs ?? maxTimeoutMs, maxTimeoutMs);
          const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]);
          let response: Response | undefined;
          for (let hop = 0; ; hop++) {
            check(url);
            try {
              response = await fetch(url, {
                method,
                redirect: "manual",
                signal,
                ...(input.headers ? { headers: input.headers } : {}),
                ...(input.body !== undefined && method !== "GET" && method !== "HEAD"
                  ? { body: input.body }
                  : {}),
              });
            } catch (err) {
              if (signal.aborted && !ctx.signal.aborted) {
                throw new AgentError(`request timed out after ${timeoutMs} ms`, {
                  code: "DEADLINE_EXCEEDED",
                });
              }
              throw new AgentError(`request failed: ${(err as Error).cause ?? err}`, {
                code: "UNAVAILABLE",
              });
            }
            const location = response.headers.get("location");
            if (response.status < 300 || response.status >= 400 || !location) break;
            if (hop >= maxRedirects) {
              throw nonRetryable(`more than ${maxRedirects} redirects`, {
                code: "TOO_MANY_REDIRECTS",
              });
            }
            await response.body?.cancel();
            url = new URL(location, url);
          }
          const { text, bytes, truncated } = await readCapped(response, maxBytes);
          const headers: Record<string, string> = {};
          response.headers.forEach((value, key) => {
            headers[key] = value;
          });
          return {
            url: url.toString(),
            status: response.status,
            statusText: response.statusText,
            headers,
            body: text,
            bytes,
            truncated,
          };
        },
      },
    },
  });
}

/** Reads at most `maxBytes` of the body, then stops the download. */
async function readCapped(
  response: Response,
  maxBytes: number,
): Promise<{ text: string; bytes: number; truncated: boolean }> {
  if (!response.body) return { text: "", bytes: 0, truncated: false };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  let truncated = false;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    const room = maxBytes - bytes;
    if (value.byteLength > room) {
      chunks.push(value.subarray(0, room));
      bytes += room;
      truncated = true;
      await reader.cancel();
      break;
    }
    chunks.push(value);
    bytes += value.byteLength;
  }
  return { text: new TextDecoder().decode(Buffer.concat(chunks)), bytes, truncated };
}

export const httpAgent = (): AgentDefinition => createHttpAgent();
