/**
 * The HTTP edge in front of the Connect router: secure headers on every
 * response, an explicit CORS allowlist, and a listener that speaks HTTP/1.1
 * and HTTP/2 on one port — TLS with ALPN in production, or plain text on
 * loopback for the embedded mode, where the first bytes of a connection tell
 * an HTTP/2 prior-knowledge client (gRPC, `grpcurl -plaintext`) from HTTP/1.1.
 * A certificate given as files is re-read when they change (cert-manager
 * renewal), like the internal ones: new connections get the new certificate,
 * and a broken or mismatched pair is refused while the last good one serves.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttp1Server } from "node:http";
import {
  createServer as createH2cServer,
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from "node:http2";
import { createServer as createNetServer, isIP, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { createSecureContext } from "node:tls";
import { cors } from "@connectrpc/connect";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import type { Logger } from "../lib/log/logger.js";
import { emitSecurityEvent } from "../lib/siem/siem.js";
import { type CertificateValidity, certificateExpiryReporter } from "../lib/tls/cert-watcher.js";
import { serialReloads, watchDirectories } from "../lib/watch/file-reload.js";

export type NodeRequest = IncomingMessage | Http2ServerRequest;
export type NodeResponse = ServerResponse | Http2ServerResponse;
export type NodeHandler = (req: NodeRequest, res: NodeResponse) => void;

export interface CorsOptions {
  /** Exact origins allowed to call from a browser, e.g. `https://app.example.com`. Default none. */
  origins: readonly string[];
  /** Preflight cache time in seconds. Default 7200. */
  maxAgeS?: number;
}

const allowedHeaders = [...cors.allowedHeaders, "Authorization", "X-Api-Key"].join(", ");
const exposedHeaders = [...cors.exposedHeaders, "Retry-After"].join(", ");
const allowedMethods = cors.allowedMethods.join(", ");

/**
 * Wraps `next` with secure headers and CORS. A cross-origin request from an
 * origin not on the list gets no CORS headers (the browser then blocks it);
 * its preflight gets 403.
 */
export function withEdgeHeaders(
  next: NodeHandler,
  options: CorsOptions & { tls: boolean },
): NodeHandler {
  const origins = new Set(options.origins);
  const maxAge = String(options.maxAgeS ?? 7200);
  return (req, res) => {
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("X-Frame-Options", "DENY");
    res.setHeader("Referrer-Policy", "no-referrer");
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
    if (options.tls) res.setHeader("Strict-Transport-Security", "max-age=31536000");
    const origin = req.headers.origin;
    if (typeof origin === "string" && !sameOrigin(origin, req)) {
      if (origins.has(origin)) {
        res.setHeader("Access-Control-Allow-Origin", origin);
        res.setHeader("Vary", "Origin");
        res.setHeader("Access-Control-Expose-Headers", exposedHeaders);
      } else if (req.method === "OPTIONS") {
        res.writeHead(403, { "Content-Type": "text/plain" });
        res.end("origin not allowed\n");
        return;
      }
      if (req.method === "OPTIONS") {
        res.writeHead(204, {
          "Access-Control-Allow-Methods": allowedMethods,
          "Access-Control-Allow-Headers": allowedHeaders,
          "Access-Control-Max-Age": maxAge,
        });
        res.end();
        return;
      }
    }
    next(req, res);
  };
}

function sameOrigin(origin: string, req: NodeRequest): boolean {
  const host = req.headers[":authority"] ?? req.headers.host;
  if (typeof host !== "string") return false;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** The public certificate: PEM, or PEM files watched for changes (e.g. a cert-manager secret). */
export type ListenerTls =
  | { cert: string | Buffer; key: string | Buffer }
  | {
      certFile: string;
      keyFile: string;
      /** Re-check besides fs.watch (volumes swapped by symlink). Default 5000 ms. */
      pollMs?: number;
    };

export interface ListenOptions {
  host: string;
  port: number;
  /** Certificate chain and key; without them the listener is plain text (loopback only). */
  tls?: ListenerTls | undefined;
  /** Allow plain text on a non-loopback address (behind a TLS-terminating proxy). Default false. */
  allowInsecure?: boolean;
  /** Where certificate reloads are reported. */
  log?: Logger;
}

export interface Listener {
  port: number;
  close(): Promise<void>;
}

/** Binds `handler` on HTTP/1.1 and HTTP/2. */
export async function listen(handler: NodeHandler, options: ListenOptions): Promise<Listener> {
  const sockets = new Set<Socket>();
  let server: Server;
  let closeAll: () => void;
  if (options.tls) {
    const tls = options.tls;
    const files = "certFile" in tls ? tls : undefined;
    let pair = "certFile" in tls ? await readPair(tls) : { cert: tls.cert, key: tls.key };
    const secure = createSecureServer(
      { ...pair, allowHTTP1: true, minVersion: "TLSv1.2" },
      handler as never,
    );
    server = secure;
    closeAll = () => undefined;
    if (files) {
      let closed = false;
      // Rotations and a certificate left unrotated are security events, as for workload certificates.
      const name = `public listener ${files.certFile}`;
      const reportExpiry = certificateExpiryReporter(name, options.log);
      reportExpiry(validityOf(pair.cert));
      const reloads = serialReloads(
        async () => {
          try {
            return await reload();
          } finally {
            reportExpiry(validityOf(pair.cert));
          }
        },
        () => closed,
      );
      const reload = async () => {
        let next: { cert: Buffer; key: Buffer };
        try {
          next = await readPair(files);
          createSecureContext(next); // throws when the key does not match the certificate
        } catch (err) {
          options.log?.warn(
            { err, certFile: files.certFile },
            "public certificate invalid; keeping the last good one",
          );
          return false;
        }
        if (Buffer.from(pair.cert).equals(next.cert) && Buffer.from(pair.key).equals(next.key)) {
          return false;
        }
        secure.setSecureContext({ ...next, minVersion: "TLSv1.2" });
        pair = next;
        const { serial, notAfter } = validityOf(next.cert);
        emitSecurityEvent({
          kind: "cert.rotated",
          resource: name,
          message: `certificate ${name} rotated to serial ${serial}`,
          details: { serial, notAfter: notAfter.toISOString() },
        });
        options.log?.info({ certFile: files.certFile }, "public certificate reloaded");
        return true;
      };
      // cert-manager writes both files in a burst: a short debounce waits for its end.
      const watching = watchDirectories(
        [dirname(files.certFile), dirname(files.keyFile)],
        () => void reloads.run(),
        { debounceMs: 25, pollMs: files.pollMs ?? 5000 },
      );
      closeAll = () => {
        closed = true;
        watching.close();
      };
    }
  } else {
    if (!isLoopback(options.host) && !options.allowInsecure) {
      throw new MeshError(
        Code.FailedPrecondition,
        `refusing plain-text HTTP on ${options.host}: configure TLS, or bind 127.0.0.1`,
      );
    }
    const h1 = createHttp1Server(handler as never);
    const h2 = createH2cServer(handler as never);
    const preface = Buffer.from("PRI * HTTP/2.0");
    server = createNetServer((socket) => {
      let seen = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        const n = Math.min(seen.length, preface.length);
        const isH2 = seen.subarray(0, n).equals(preface.subarray(0, n));
        if (isH2 && seen.length < preface.length) return; // undecided: wait for more
        socket.removeListener("data", onData);
        // Hand the socket itself on with the sniffed bytes put back. HTTP/2
        // sessions read the native handle, and (Node >= 15) first replay what
        // sits in the socket's readable buffer; wrapping the socket in a JS
        // Duplex instead would push every frame through a JSStreamSocket.
        socket.pause();
        socket.unshift(seen);
        if (isH2) {
          h2.emit("connection", socket);
        } else {
          h1.emit("connection", socket);
          socket.resume();
        }
      };
      socket.on("data", onData);
      socket.on("error", () => socket.destroy());
    });
    closeAll = () => {
      h1.closeAllConnections();
    };
  }
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        closeAll();
        for (const s of sockets) s.destroy();
      }),
  };
}

/** The leaf's serial and validity (the first certificate of a PEM chain). */
function validityOf(cert: string | Buffer): CertificateValidity {
  const leaf = new X509Certificate(cert);
  return {
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  };
}

async function readPair(files: { certFile: string; keyFile: string }) {
  const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
  return { cert, key };
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}
