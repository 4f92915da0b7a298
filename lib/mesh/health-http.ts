/**
 * The per-process HTTP endpoint for operators and Kubernetes probes:
 * `/metrics` (Prometheus text, or OpenMetrics with exemplars when asked), `/healthz` (alive: 200 while the process
 * runs) and `/readyz` (200 only while the store serves, the policy is loaded
 * and every component started; 503 otherwise).
 *
 * @example
 * const http = await serveHealthHttp({ port: 9464, registry, ready: () => runtime.ready() });
 * // curl -i http://127.0.0.1:9464/readyz
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { renderMetrics } from "../telemetry/exposition.js";

export interface HealthHttpOptions {
  registry: Registry;
  ready: () => boolean;
  /** Lines after the verdict in `/readyz` (e.g. why the last policy reload was rejected). */
  detail?: () => string[];
  /** Default 9464; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

export interface HealthHttpServer {
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  close(): Promise<void>;
}

export async function serveHealthHttp(options: HealthHttpOptions): Promise<HealthHttpServer> {
  const { registry, ready } = options;
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    switch (path) {
      case "/healthz":
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
        return;
      case "/readyz": {
        const ok = ready();
        const detail = options.detail?.() ?? [];
        res
          .writeHead(ok ? 200 : 503, { "content-type": "text/plain" })
          .end([ok ? "ready" : "not ready", ...detail, ""].join("\n"));
        return;
      }
      case "/metrics":
        // OpenMetrics (with exemplars) when the scraper asks for it, else the Prometheus text.
        renderMetrics(registry, req.headers.accept).then(
          ({ contentType, body }) => res.writeHead(200, { "content-type": contentType }).end(body),
          () => res.writeHead(500, { "content-type": "text/plain" }).end("metrics failed\n"),
        );
        return;
      default:
        res
          .writeHead(404, { "content-type": "text/plain" })
          .end("try /metrics, /healthz, /readyz\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 9464, options.host ?? "127.0.0.1", () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address === "0.0.0.0" || address === "::" ? "127.0.0.1" : address;
  return {
    port,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
