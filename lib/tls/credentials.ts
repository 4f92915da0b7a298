/**
 * grpc-js credentials built on a `CertWatcher`, so servers and clients pick up
 * rotated certificate files without a restart. Only mutual TLS exists here:
 * there is deliberately no way to build insecure credentials in this module.
 *
 * - Server: requires and verifies a client certificate (`requestCert` and
 *   `rejectUnauthorized` are both true); the caller's SPIFFE ID is read per
 *   call from the verified peer certificate by the RPC server.
 * - Client: verifies the server's chain against the CA bundle and then its
 *   SPIFFE ID (the URI SAN), not its host name, so a server is reachable on
 *   any address and still cannot be impersonated by another mesh identity.
 *
 * @example
 * const certs = await watchCertificates({ dir: ".agentmesh/certs/executor" });
 * server.bindAsync(addr, serverCredentials(certs), cb);
 * new grpc.Client(addr, channelCredentials(certs, { expect: registryId }), channelOptions(registryId));
 */
import type { PeerCertificate } from "node:tls";
import { type ChannelCredentials, experimental, type ServerCredentials } from "@grpc/grpc-js";
import { spiffeIdsFromSubjectAltName } from "../identity/spiffe.js";
import type { CertWatcher } from "./cert-watcher.js";

/** mTLS server credentials that follow `certs` as the files rotate. */
export function serverCredentials(certs: CertWatcher): ServerCredentials {
  // grpc-js 1.14.7 passes (ca, identity) to a constructor taking (identity, ca):
  // one provider serving both roles makes the order irrelevant.
  const creds = experimental.createCertificateProviderServerCredentials(certs, certs, true);
  // grpc-js reads the context options when it creates the listener and only
  // then subscribes its watcher; the first update (ours is synchronous) would
  // reach nobody and every connection would be dropped as "credentials not
  // loaded". Subscribing once here fills the options before the server binds.
  creds._addWatcher(() => {});
  if (creds._getSecureContextOptions() === null) {
    throw new Error("server credentials: certificates were not loaded synchronously");
  }
  return creds;
}

/** What a client accepts as the server's identity. */
export type ServerIdentityCheck = string | readonly string[] | ((spiffeId: string) => boolean);

export interface ChannelCredentialsOptions {
  /** The server's expected SPIFFE ID(s), or a predicate over it. */
  expect: ServerIdentityCheck;
}

/** mTLS channel credentials presenting `certs` and verifying the server's SPIFFE ID. */
export function channelCredentials(
  certs: CertWatcher,
  options: ChannelCredentialsOptions,
): ChannelCredentials {
  return experimental.createCertificateProviderChannelCredentials(certs, certs, {
    checkServerIdentity: spiffeServerCheck(options.expect),
  });
}

/**
 * A `checkServerIdentity` for `tls.connect`: the certificate (already verified
 * against the CA) must carry exactly one SPIFFE ID and it must be expected.
 */
export function spiffeServerCheck(
  expect: ServerIdentityCheck,
): (host: string, cert: PeerCertificate) => Error | undefined {
  const accepts =
    typeof expect === "function"
      ? expect
      : typeof expect === "string"
        ? (id: string) => id === expect
        : (id: string) => expect.includes(id);
  const describe = typeof expect === "function" ? "the expected identity" : JSON.stringify(expect);
  return (_host, cert) => {
    const ids = spiffeIdsFromSubjectAltName(cert.subjectaltname);
    if (ids.length !== 1) {
      return new Error(`server certificate has ${ids.length} SPIFFE IDs; expected exactly one`);
    }
    const id = ids[0] as string;
    if (!accepts(id)) return new Error(`server identity ${id} is not ${describe}`);
    return undefined;
  };
}
