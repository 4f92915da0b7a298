/**
 * Certificate files that can change under a running process. A `CertWatcher`
 * reads `tls.crt`, `tls.key` and `ca.crt` (the cert-manager layout), validates
 * them as a set, and re-reads them when they change (fs.watch on the folder,
 * plus a periodic check because Kubernetes swaps secret volumes by symlink).
 *
 * - The first load happens in `watchCertificates()` and must succeed, so no
 *   server accepts traffic before it has a certificate.
 * - A half-written or mismatched set (new key, old certificate) is rejected:
 *   the last good set stays in use, the error is logged and counted in
 *   `agentmesh_cert_reloads_total{result="error"}`, and the next change retries.
 * - Rotations are security events (`cert.rotated`), and so is a certificate
 *   still in use with less than a third of its lifetime left (`cert.expiring`:
 *   cert-manager renews at two thirds, so its rotation failed) or past its end
 *   (`cert.expired`), checked at every poll and reported once per certificate.
 * - It implements grpc-js's `CertificateProvider` for both the CA and the
 *   identity, and calls new listeners synchronously with the current set, so
 *   credentials built on it are valid from the first connection.
 *
 * @example
 * const certs = await watchCertificates({ dir: ".agentmesh/certs/executor" });
 * certs.current.spiffeId; // "spiffe://agentmesh.local/ns/agentmesh/sa/executor"
 * certs.close();
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createSecureContext } from "node:tls";
import type { experimental } from "@grpc/grpc-js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { peerFromSubjectAltName } from "../identity/spiffe.js";
import type { Logger } from "../log/logger.js";
import { emitSecurityEvent } from "../siem/siem.js";
import type { MeshMetrics } from "../telemetry/metrics.js";
import { type DirectoryWatch, serialReloads, watchDirectories } from "../watch/file-reload.js";

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/** One validated set of certificate files. */
export interface CertificateSet {
  /** PEM chain (leaf first). */
  cert: Buffer;
  key: Buffer;
  /** PEM trust bundle. */
  ca: Buffer;
  /** SPIFFE ID of the leaf (its single spiffe:// URI SAN); undefined if it has none. */
  spiffeId: string | undefined;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

export interface WatchCertificatesOptions {
  /** Folder holding `tls.crt`, `tls.key`, `ca.crt`. */
  dir: string;
  /** Label in logs and metrics; default the folder's base name. */
  name?: string;
  /** Periodic re-check besides fs.watch; default 5000 ms. 0 disables it. */
  pollIntervalMs?: number;
  logger?: Logger;
  metrics?: MeshMetrics;
}

/** A live, validated view of certificate files; see the module comment. */
export class CertWatcher implements experimental.CertificateProvider {
  readonly dir: string;
  readonly name: string;
  #current: CertificateSet;
  readonly #options: WatchCertificatesOptions;
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();
  readonly #updateListeners = new Set<(set: CertificateSet) => void>();
  #watching: DirectoryWatch | undefined;
  #lastError: string | undefined;
  readonly #reportExpiry: ReturnType<typeof certificateExpiryReporter>;
  #closed = false;
  readonly #reloads = serialReloads(
    () => this.#reloadOnce(),
    () => this.#closed,
  );

  /** Use `watchCertificates()`; the constructor takes an already validated first set. */
  constructor(options: WatchCertificatesOptions, first: CertificateSet) {
    this.dir = options.dir;
    this.name = options.name ?? (options.dir.split(/[\\/]/).filter(Boolean).pop() as string);
    this.#options = options;
    this.#current = first;
    this.#reportExpiry = certificateExpiryReporter(this.name, options.logger);
    this.#recordExpiry();
    this.#checkExpiry();
  }

  /** The set in use (the last good one). */
  get current(): CertificateSet {
    return this.#current;
  }

  /** The error of the latest failed reload, cleared by a successful one. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Calls `listener` after every successful reload that changed the files; returns an unsubscribe. */
  onUpdate(listener: (set: CertificateSet) => void): () => void {
    this.#updateListeners.add(listener);
    return () => this.#updateListeners.delete(listener);
  }

  /**
   * Re-reads the files now. Resolves true when a new valid set was loaded,
   * false when nothing changed or the new files were invalid (the old set stays).
   */
  reload(): Promise<boolean> {
    return this.#reloads.run();
  }

  /** Stops watching. Credentials built on it keep the last set. */
  close(): void {
    this.#closed = true;
    this.#watching?.close();
  }

  // grpc-js CertificateProvider: listeners get the current set at once (synchronously).
  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    listener({ caCertificate: this.#current.ca });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    listener({ certificate: this.#current.cert, privateKey: this.#current.key });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }

  /** @internal Starts watching the folder (and polling it). */
  start(): void {
    // Writers touch three files in a row: a short debounce waits for the burst to end.
    this.#watching = watchDirectories([this.dir], () => void this.reload(), {
      debounceMs: 25,
      pollMs: this.#options.pollIntervalMs ?? 5000,
    });
  }

  async #reloadOnce(): Promise<boolean> {
    try {
      return await this.#readAndSwap();
    } finally {
      // Every poll: a certificate that was not rotated in time is reported.
      this.#checkExpiry();
    }
  }

  async #readAndSwap(): Promise<boolean> {
    const { logger, metrics } = this.#options;
    let next: CertificateSet;
    try {
      const files = await readCertificateFiles(this.dir);
      const cur = this.#current;
      // Unchanged files (every poll, between rotations) need no new check: validating a set
      // (key against leaf, a trial secure context) costs milliseconds of the event loop.
      if (files.cert.equals(cur.cert) && files.key.equals(cur.key) && files.ca.equals(cur.ca)) {
        this.#lastError = undefined;
        return false;
      }
      next = checkCertificateFiles(files);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (message !== this.#lastError) {
        logger?.warn(
          { event: "cert_reload_failed", name: this.name, dir: this.dir, err: message },
          "certificate files invalid; keeping the last good set",
        );
      }
      this.#lastError = message;
      metrics?.certReloads.inc({ name: this.name, result: "error" });
      return false;
    }
    this.#lastError = undefined;
    this.#current = next;
    this.#recordExpiry();
    metrics?.certReloads.inc({ name: this.name, result: "ok" });
    emitSecurityEvent({
      kind: "cert.rotated",
      identity: next.spiffeId,
      resource: this.name,
      message: `certificate ${this.name} rotated to serial ${next.serial}`,
      details: { serial: next.serial, notAfter: next.notAfter.toISOString() },
    });
    logger?.info(
      {
        event: "cert_reloaded",
        name: this.name,
        spiffeId: next.spiffeId,
        serial: next.serial,
        notAfter: next.notAfter,
      },
      "certificates reloaded",
    );
    for (const l of this.#caListeners) l({ caCertificate: next.ca });
    for (const l of this.#identityListeners) l({ certificate: next.cert, privateKey: next.key });
    for (const l of this.#updateListeners) l(next);
    return true;
  }

  #checkExpiry(now = Date.now()): void {
    this.#reportExpiry(this.#current, now);
  }

  #recordExpiry(): void {
    const { metrics } = this.#options;
    if (!metrics) return;
    metrics.certExpiry.set(
      { name: this.name, spiffe_id: this.#current.spiffeId ?? "" },
      Math.floor(this.#current.notAfter.getTime() / 1000),
    );
  }
}

type ExpiryState = "expiring" | "expired";

/** `expired` past `notAfter`, `expiring` within the last third of its lifetime, else undefined. */
export function expiryState(
  set: Pick<CertificateSet, "notBefore" | "notAfter">,
  now = Date.now(),
): ExpiryState | undefined {
  const end = set.notAfter.getTime();
  if (now >= end) return "expired";
  const lifetime = end - set.notBefore.getTime();
  return end - now < lifetime / 3 ? "expiring" : undefined;
}

/** What the expiry of a certificate in use is judged and reported on. */
export interface CertificateValidity {
  spiffeId?: string | undefined;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * Reports the certificate called `name` as `cert.expiring` or `cert.expired`
 * (a security event and a warning) when `expiryState` says so, once per
 * certificate and state however often it is called.
 */
export function certificateExpiryReporter(name: string, logger?: Logger) {
  let reported: { serial: string; state: ExpiryState } | undefined;
  return (set: CertificateValidity, now = Date.now()): void => {
    const state = expiryState(set, now);
    if (!state) return;
    if (reported?.serial === set.serial && reported.state === state) return;
    reported = { serial: set.serial, state };
    const secondsLeft = Math.floor((set.notAfter.getTime() - now) / 1000);
    const message =
      state === "expired"
        ? `certificate ${name} expired at ${set.notAfter.toISOString()} and is still in use`
        : `certificate ${name} expires at ${set.notAfter.toISOString()} and was not rotated`;
    emitSecurityEvent({
      kind: state === "expired" ? "cert.expired" : "cert.expiring",
      identity: set.spiffeId,
      resource: name,
      message,
      details: {
        serial: set.serial,
        notBefore: set.notBefore.toISOString(),
        notAfter: set.notAfter.toISOString(),
        secondsLeft,
      },
    });
    logger?.warn(
      { event: `cert_${state}`, name, serial: set.serial, notAfter: set.notAfter },
      message,
    );
  };
}

/**
 * Loads and validates the files in `options.dir`, then watches them. Rejects
 * with FAILED_PRECONDITION when the first set is missing or invalid.
 */
export async function watchCertificates(options: WatchCertificatesOptions): Promise<CertWatcher> {
  let first: CertificateSet;
  try {
    first = await readCertificateSet(options.dir);
  } catch (err) {
    throw new MeshError(
      Code.FailedPrecondition,
      `cannot load certificates from ${options.dir}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  const watcher = new CertWatcher(options, first);
  watcher.start();
  return watcher;
}

/**
 * Reads one set and checks it the way TLS will use it: the key matches the
 * leaf, the CA bundle parses, and Node can build a secure context from them
 * (grpc-js drops every new connection if `setSecureContext` throws later).
 */
export async function readCertificateSet(dir: string): Promise<CertificateSet> {
  return checkCertificateFiles(await readCertificateFiles(dir));
}

type CertificateFiles = Pick<CertificateSet, "cert" | "key" | "ca">;

async function readCertificateFiles(dir: string): Promise<CertificateFiles> {
  const [cert, key, ca] = await Promise.all([
    readFile(join(dir, "tls.crt")),
    readFile(join(dir, "tls.key")),
    readFile(join(dir, "ca.crt")),
  ]);
  return { cert, key, ca };
}

/** The checks of `readCertificateSet` on files already read. */
function checkCertificateFiles({ cert, key, ca }: CertificateFiles): CertificateSet {
  const leaf = new X509Certificate(cert);
  if (!leaf.checkPrivateKey(createPrivateKey(key))) {
    throw new Error("tls.key does not match tls.crt");
  }
  new X509Certificate(ca);
  createSecureContext({ cert, key, ca });
  return {
    cert,
    key,
    ca,
    spiffeId: peerFromSubjectAltName(leaf.subjectAltName)?.spiffeId,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    serial: leaf.serialNumber,
  };
}
