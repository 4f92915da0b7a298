/**
 * A development certificate authority in pure Node (WebCrypto + @peculiar/x509,
 * EC P-256): no openssl on a fresh machine. It writes the file layout
 * cert-manager produces, so the same code reads dev and production certificates:
 *
 * ```
 * <certDir>/ca/{tls.crt,tls.key,ca.crt}        the CA (tls.crt = ca.crt)
 * <certDir>/<name>/{tls.crt,tls.key,ca.crt}    one identity per service account
 * ```
 *
 * Leaves are short-lived (24 h by default) and carry exactly one URI SAN, the
 * SPIFFE ID, plus DNS SANs `<name>` and `localhost` and the IP SAN 127.0.0.1 so
 * tools such as grpcurl can verify a server by host name too.
 *
 * @example
 * await initCa({ certDir: ".agentmesh/certs" });
 * await issueCertificate({ certDir: ".agentmesh/certs", name: "executor" });
 * await ensureIdentities({ certDir, names: ["registry", "planner", "executor"] }); // embedded mode
 */
import { createPrivateKey, X509Certificate as NodeX509, webcrypto } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type * as x509 from "@peculiar/x509";
import { Code, MeshError } from "../errors/mesh-error.js";
import {
  defaultNamespace,
  defaultTrustDomain,
  peerFromSubjectAltName,
  spiffeId,
} from "../identity/spiffe.js";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
// @peculiar/x509 is typed against the DOM's Crypto; Node's webcrypto is the same API.
type X509Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;
const x509Crypto = webcrypto as unknown as X509Crypto;
type X509Key = Parameters<typeof x509.SubjectKeyIdentifierExtension.create>[0];
const ecAlgorithm = { name: "ECDSA", namedCurve: "P-256" } as const;

let x509Module: Promise<typeof x509> | undefined;
/**
 * @peculiar/x509, loaded only to issue certificates: with tsyringe and the
 * Reflect metadata polyfill it needs, it would add a tenth of a second to
 * every start that finds its certificates already there.
 */
function loadX509(): Promise<typeof x509> {
  x509Module ??= import("reflect-metadata").then(() => import("@peculiar/x509"));
  return x509Module;
}
const signingAlgorithm = { name: "ECDSA", hash: "SHA-256" } as const;

/** The file names cert-manager writes into a TLS secret volume. */
export const certFileNames = { cert: "tls.crt", key: "tls.key", ca: "ca.crt" } as const;

/** Paths of one identity's files. */
export interface CertPaths {
  dir: string;
  cert: string;
  key: string;
  ca: string;
}

/** Where the files of identity `name` live under `certDir` (the CA is `name = "ca"`). */
export function certPaths(certDir: string, name: string): CertPaths {
  const dir = join(certDir, name);
  return {
    dir,
    cert: join(dir, certFileNames.cert),
    key: join(dir, certFileNames.key),
    ca: join(dir, certFileNames.ca),
  };
}

export interface InitCaOptions {
  certDir: string;
  /** SPIFFE trust domain named in the CA; default `agentmesh.local`. */
  trustDomain?: string;
  /** CA lifetime; default 365 days. */
  ttlMs?: number;
  /** Replace an existing CA (every leaf must then be reissued); default false. */
  force?: boolean;
}

export interface CaInfo {
  paths: CertPaths;
  /** True when a new CA was written, false when an existing one was kept. */
  created: boolean;
  notAfter: Date;
  serial: string;
}

/** Creates the CA under `<certDir>/ca/` unless one exists (or `force`). */
export async function initCa(options: InitCaOptions): Promise<CaInfo> {
  const paths = certPaths(options.certDir, "ca");
  if (!options.force) {
    const existing = await readCa(options.certDir).catch(() => undefined);
    if (existing) {
      return {
        paths,
        created: false,
        notAfter: new Date(existing.cert.validTo),
        serial: existing.cert.serialNumber,
      };
    }
  }
  const x509 = await loadX509();
  const trustDomain = options.trustDomain ?? defaultTrustDomain;
  const keys = (await crypto.subtle.generateKey(ecAlgorithm, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: `CN=agentmesh dev CA ${trustDomain}, O=agentmesh`,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + (options.ttlMs ?? 365 * 86_400_000)),
      keys: keys as never, // Node CryptoKeyPair; x509 is typed against the DOM one
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(
          keys.publicKey as X509Key,
          false,
          x509Crypto,
        ),
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: `spiffe://${trustDomain}` },
        ]),
      ],
    },
    x509Crypto,
  );
  const certPem = cert.toString("pem");
  const keyPem = await exportKeyPem(keys.privateKey);
  await writeIdentity(paths, certPem, keyPem, certPem);
  return { paths, created: true, notAfter: cert.notAfter, serial: cert.serialNumber };
}

export interface IssueOptions {
  certDir: string;
  /** Service-account name: `registry`, `executor`, `cli`, `agent-text`, ... */
  name: string;
  /** Default `agentmesh.local`. */
  trustDomain?: string;
  /** Default `agentmesh`. */
  namespace?: string;
  /** Lifetime; default 24 h. */
  ttlMs?: number;
  /** Start of validity; default one minute ago (clock skew). Tests use it to make expired certificates. */
  notBefore?: Date;
  /** Extra DNS SANs besides `<name>` and `localhost`. */
  dnsNames?: string[];
}

export interface IssuedCertificate {
  paths: CertPaths;
  spiffeId: string;
  notAfter: Date;
  serial: string;
}

/** Issues a leaf for `name` signed by the CA under `certDir`, writing `<certDir>/<name>/`. */
export async function issueCertificate(options: IssueOptions): Promise<IssuedCertificate> {
  if (options.name === "ca")
    throw new MeshError(Code.InvalidArgument, `"ca" is reserved for the CA`);
  const id = spiffeId({
    trustDomain: options.trustDomain ?? defaultTrustDomain,
    namespace: options.namespace ?? defaultNamespace,
    name: options.name,
  });
  const x509 = await loadX509();
  const ca = await readCa(options.certDir);
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await crypto.subtle.importKey("pkcs8", pemToDer(ca.keyPem), ecAlgorithm, false, [
    "sign",
  ]);
  const keys = (await crypto.subtle.generateKey(ecAlgorithm, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + 60_000 + (options.ttlMs ?? 86_400_000));
  const dnsNames = [options.name, "localhost", ...(options.dnsNames ?? [])];
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: `CN=${options.name}, O=agentmesh`,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey as never,
      signingKey: caKey as never,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        new x509.ExtendedKeyUsageExtension(
          [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
          false,
        ),
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: id },
          ...dnsNames.map((value) => ({ type: "dns" as const, value })),
          { type: "ip", value: "127.0.0.1" },
        ]),
        await x509.SubjectKeyIdentifierExtension.create(
          keys.publicKey as X509Key,
          false,
          x509Crypto,
        ),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, x509Crypto),
      ],
    },
    x509Crypto,
  );
  const paths = certPaths(options.certDir, options.name);
  await writeIdentity(paths, cert.toString("pem"), await exportKeyPem(keys.privateKey), ca.certPem);
  return { paths, spiffeId: id, notAfter: cert.notAfter, serial: cert.serialNumber };
}

export interface EnsureIdentitiesOptions {
  certDir: string;
  /** Service-account names that must have a valid certificate. */
  names: readonly string[];
  trustDomain?: string;
  namespace?: string;
  /** Leaf lifetime; default 24 h. */
  ttlMs?: number;
  /** Reissue when less than this remains; default a third of `ttlMs`. */
  renewBeforeMs?: number;
}

export interface EnsuredIdentity {
  name: string;
  spiffeId: string;
  paths: CertPaths;
  notAfter: Date;
  /** Why it was (re)issued, or undefined when the existing certificate was kept. */
  issued: "missing" | "expiring" | "mismatch" | undefined;
}

/**
 * Makes sure the CA and a current certificate for every name exist: creates
 * what is missing, reissues what is near expiry, names another SPIFFE ID or was
 * signed by another CA. The embedded mode calls this on every start (and may
 * call it periodically: running servers pick reissued files up by themselves).
 */
export async function ensureIdentities(
  options: EnsureIdentitiesOptions,
): Promise<EnsuredIdentity[]> {
  const trustDomain = options.trustDomain ?? defaultTrustDomain;
  const namespace = options.namespace ?? defaultNamespace;
  const ttlMs = options.ttlMs ?? 86_400_000;
  const renewBeforeMs = options.renewBeforeMs ?? Math.floor(ttlMs / 3);
  await initCa({ certDir: options.certDir, trustDomain });
  const ca = new NodeX509(await readFile(certPaths(options.certDir, "ca").cert));
  const out: EnsuredIdentity[] = [];
  for (const name of options.names) {
    const expected = spiffeId({ trustDomain, namespace, name });
    const paths = certPaths(options.certDir, name);
    let reason: EnsuredIdentity["issued"];
    let notAfter: Date | undefined;
    try {
      const [certPem, keyPem] = await Promise.all([readFile(paths.cert), readFile(paths.key)]);
      const cert = new NodeX509(certPem);
      notAfter = new Date(cert.validTo);
      if (
        !cert.checkPrivateKey(createPrivateKey(keyPem)) ||
        !cert.checkIssued(ca) ||
        !cert.verify(ca.publicKey)
      ) {
        reason = "mismatch";
      } else if (peerFromSubjectAltName(cert.subjectAltName)?.spiffeId !== expected) {
        reason = "mismatch";
      } else if (notAfter.getTime() - Date.now() < renewBeforeMs) {
        reason = "expiring";
      }
    } catch {
      reason = "missing";
    }
    if (reason) {
      const issued = await issueCertificate({
        certDir: options.certDir,
        name,
        trustDomain,
        namespace,
        ttlMs,
      });
      notAfter = issued.notAfter;
    }
    out.push({ name, spiffeId: expected, paths, notAfter: notAfter as Date, issued: reason });
  }
  return out;
}

interface CaMaterial {
  certPem: string;
  keyPem: string;
  cert: NodeX509;
}

async function readCa(certDir: string): Promise<CaMaterial> {
  const paths = certPaths(certDir, "ca");
  let certPem: string;
  let keyPem: string;
  try {
    [certPem, keyPem] = await Promise.all([
      readFile(paths.cert, "utf8"),
      readFile(paths.key, "utf8"),
    ]);
  } catch (err) {
    throw new MeshError(
      Code.FailedPrecondition,
      `no CA under ${paths.dir}: run \`agentmesh certs init\` first`,
      { cause: err },
    );
  }
  const cert = new NodeX509(certPem);
  if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(keyPem))) {
    throw new MeshError(
      Code.FailedPrecondition,
      `${paths.dir} does not hold a CA certificate and its key`,
    );
  }
  return { certPem, keyPem, cert };
}

/**
 * Writes one identity so that each file changes atomically (temp file and
 * rename); the key is 0600. A reader may still see a new key beside an old
 * certificate for a moment: the certificate watcher keeps its last good pair.
 */
async function writeIdentity(
  paths: CertPaths,
  certPem: string,
  keyPem: string,
  caPem: string,
): Promise<void> {
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await atomicWrite(paths.ca, caPem, 0o644);
  await atomicWrite(paths.key, keyPem, 0o600);
  await atomicWrite(paths.cert, certPem, 0o644);
}

async function atomicWrite(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey("pkcs8", key));
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n");
  return `-----BEGIN PRIVATE KEY-----\n${b64.trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

function pemToDer(pem: string): ArrayBuffer {
  const b64 = pem.replace(/-----(BEGIN|END)[^-]+-----/g, "").replace(/\s+/g, "");
  const buf = Buffer.from(b64, "base64");
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] as number) & 0x7f; // positive INTEGER
  return Buffer.from(bytes).toString("hex");
}
