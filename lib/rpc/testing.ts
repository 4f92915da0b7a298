/**
 * Test helpers for code that serves or calls mesh RPCs: a throwaway CA with
 * certificates for the names you need, and simple authorizers. Real
 * certificates, real sockets, no mocks.
 *
 * @example
 * const pki = await createTestPki(["registry", "executor"]);
 * const server = createServer({ certs: await pki.watch("registry"), authorizer: allowAll });
 * server.add(RegistryService, impl);
 * await server.listen();
 * const channel = createChannel({ address: server.address, certs: await pki.watch("executor"), server: pki.id("registry") });
 * // ...
 * await pki.cleanup();
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spiffeId } from "../identity/spiffe.js";
import { type CertWatcher, watchCertificates } from "../tls/cert-watcher.js";
import { certPaths, type IssueOptions, initCa, issueCertificate } from "../tls/dev-ca.js";
import type { Authorizer } from "./authorizer.js";

export interface TestPki {
  /** The temporary cert folder (`<dir>/<name>/tls.crt` ...). */
  dir: string;
  /** SPIFFE ID of `name` in the default trust domain and namespace. */
  id(name: string): string;
  /** Folder of `name`'s files. */
  path(name: string): string;
  /** (Re)issues `name`'s certificate. */
  issue(name: string, options?: Omit<IssueOptions, "certDir" | "name">): Promise<void>;
  /** A watcher over `name`'s files (closed by `cleanup`). */
  watch(name: string, pollIntervalMs?: number): Promise<CertWatcher>;
  /** Closes watchers and removes the folder. */
  cleanup(): Promise<void>;
}

/** A fresh CA in a temporary folder with certificates for `names`. */
export async function createTestPki(names: readonly string[] = []): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), "agentmesh-pki-"));
  await initCa({ certDir: dir });
  const watchers: CertWatcher[] = [];
  const pki: TestPki = {
    dir,
    id: (name) => spiffeId({ name }),
    path: (name) => certPaths(dir, name).dir,
    async issue(name, options) {
      await issueCertificate({ certDir: dir, name, ...options });
    },
    async watch(name, pollIntervalMs = 0) {
      const w = await watchCertificates({ dir: certPaths(dir, name).dir, pollIntervalMs });
      watchers.push(w);
      return w;
    },
    async cleanup() {
      for (const w of watchers) w.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  for (const name of names) await pki.issue(name);
  return pki;
}

/** Allows every call from any verified peer; trusts no principal. Tests only. */
export const allowAll: Authorizer = () => ({
  allow: true,
  reason: "test: allow all",
  principalTrusted: false,
});

/** Allows only the given peer names (service accounts); trusts principals from `delegates`. */
export function allowNames(
  names: readonly string[],
  delegates: readonly string[] = [],
): Authorizer {
  return ({ peer }) => {
    const name = peer?.name ?? "";
    return names.includes(name)
      ? { allow: true, reason: "test: known peer", principalTrusted: delegates.includes(name) }
      : {
          allow: false,
          reason: `peer ${peer?.spiffeId ?? "unknown"} is not allowed`,
          principalTrusted: false,
        };
  };
}
