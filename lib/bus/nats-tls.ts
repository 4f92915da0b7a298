/**
 * How a mesh process reaches NATS safely: mutual TLS with its workload
 * certificate (the same files `lib/tls` watches for gRPC), the server verified
 * by the mesh CA and its SPIFFE ID rather than a host name, and no plaintext
 * to anything but a loopback server unless the operator opts out explicitly.
 *
 * Rotation: the TLS options object handed to nats.js is updated in place when
 * the certificate files change, and nats.js reads it at every (re)connect, so
 * a rotated certificate is presented from the next connection on; the one in
 * use stays valid until it expires (cert-manager renews well before that).
 *
 * @example
 * checkNatsTransport("tls://nats:4222", { allowPlaintext: false });
 * const tls = natsTlsOptions(certs, "spiffe://agentmesh.local/ns/agentmesh/sa/nats");
 * await connect({ servers: "tls://nats:4222", tls: tls.options });
 */
import type { PeerCertificate } from "node:tls";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { CertWatcher } from "../tls/cert-watcher.js";
import { spiffeServerCheck } from "../tls/credentials.js";

/** The service-account name of the NATS server's certificate (its SPIFFE ID's last segment). */
export const natsServerIdentity = "nats";

/** What nats.js passes to `tls.connect` (cert, key, CA, server check). */
export interface NatsTlsConnectOptions {
  cert: string;
  key: string;
  ca: string;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
}

export interface NatsTls {
  /** Handed to nats.js as `tls`; kept current as the files rotate. */
  readonly options: NatsTlsConnectOptions;
  /** Stops following the files. */
  close(): void;
}

/** Client TLS presenting `certs` and accepting only a server whose SPIFFE ID is `serverId`. */
export function natsTlsOptions(certs: CertWatcher, serverId: string): NatsTls {
  const options: NatsTlsConnectOptions = {
    cert: "",
    key: "",
    ca: "",
    checkServerIdentity: spiffeServerCheck(serverId),
  };
  const fill = () => {
    const set = certs.current;
    options.cert = set.cert.toString("utf8");
    options.key = set.key.toString("utf8");
    options.ca = set.ca.toString("utf8");
  };
  fill();
  const off = certs.onUpdate(fill);
  return { options, close: off };
}

/** Whether a NATS URL asks for TLS (`tls://`). */
export function isTlsUrl(url: string): boolean {
  return /^tls:\/\//i.test(url.trim());
}

/** Whether a NATS URL points at this machine (a dev server nothing else can reach). */
export function isLoopbackUrl(url: string): boolean {
  const withScheme = /^[a-z]+:\/\//i.test(url) ? url : `nats://${url}`;
  let host: string;
  try {
    host = new URL(withScheme).hostname;
  } catch {
    return false;
  }
  return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface TransportRule {
  /** Plaintext to a non-loopback server too (`AGENTMESH_NATS_PLAINTEXT=true`). Default false. */
  allowPlaintext?: boolean;
}

/**
 * The transport rule: every server must be `tls://`, except plaintext to a
 * loopback server (the local dev NATS) or with `allowPlaintext`. Mixing is
 * refused too, since a client would fail over from TLS to plaintext.
 * Returns "tls" or "plaintext"; throws FAILED_PRECONDITION otherwise.
 */
export function checkNatsTransport(
  urls: string | readonly string[],
  rule: TransportRule = {},
): "tls" | "plaintext" {
  const list = typeof urls === "string" ? urls.split(",") : [...urls];
  const tls = list.filter(isTlsUrl);
  if (tls.length === list.length) return "tls";
  if (tls.length > 0) {
    throw new MeshError(
      Code.FailedPrecondition,
      `NATS servers ${list.join(", ")} mix tls:// and plaintext: use tls:// for all of them`,
    );
  }
  if (rule.allowPlaintext || list.every(isLoopbackUrl)) return "plaintext";
  throw new MeshError(
    Code.FailedPrecondition,
    `plaintext NATS at ${list.join(", ")} refused: use tls:// (mutual TLS with the workload certificate); ` +
      "AGENTMESH_NATS_PLAINTEXT=true opts out for development",
  );
}
