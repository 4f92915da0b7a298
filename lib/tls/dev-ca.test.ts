import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "../errors/mesh-error.js";
import { createSiemExporter } from "../siem/exporter.js";
import { setSiemExporter } from "../siem/siem.js";
import { createMeshMetrics } from "../telemetry/metrics.js";
import { readCertificateSet, watchCertificates } from "./cert-watcher.js";
import { certPaths, ensureIdentities, initCa, issueCertificate } from "./dev-ca.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "agentmesh-ca-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("dev CA", () => {
  it("writes an EC P-256 CA and leaves in the cert-manager layout, keys 0600", async () => {
    const ca = await initCa({ certDir: dir });
    expect(ca.created).toBe(true);
    expect((await initCa({ certDir: dir })).created).toBe(false);
    const leaf = await issueCertificate({ certDir: dir, name: "executor", ttlMs: 3_600_000 });
    expect(leaf.spiffeId).toBe("spiffe://agentmesh.local/ns/agentmesh/sa/executor");
    const paths = certPaths(dir, "executor");
    expect((await stat(paths.key)).mode & 0o777).toBe(0o600);
    expect((await stat(certPaths(dir, "ca").key)).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(await readFile(paths.cert));
    const caCert = new X509Certificate(await readFile(paths.ca));
    expect(cert.checkIssued(caCert) && cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(cert.subjectAltName).toContain("URI:spiffe://agentmesh.local/ns/agentmesh/sa/executor");
    expect(cert.subjectAltName).toContain("DNS:executor");
    expect(cert.ca).toBe(false);
    expect(caCert.ca).toBe(true);
    const set = await readCertificateSet(paths.dir);
    expect(set.spiffeId).toBe(leaf.spiffeId);
  });

  it("refuses to issue without a CA, and refuses bad names", async () => {
    const empty = await mkdtemp(join(tmpdir(), "agentmesh-noca-"));
    await expect(issueCertificate({ certDir: empty, name: "executor" })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    await rm(empty, { recursive: true });
    await expect(issueCertificate({ certDir: dir, name: "Bad Name" })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
    await expect(issueCertificate({ certDir: dir, name: "ca" })).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("ensures identities: creates missing, keeps current, reissues expiring or foreign ones", async () => {
    const home = await mkdtemp(join(tmpdir(), "agentmesh-ensure-"));
    const first = await ensureIdentities({ certDir: home, names: ["registry", "planner"] });
    expect(first.map((i) => i.issued)).toEqual(["missing", "missing"]);
    const again = await ensureIdentities({ certDir: home, names: ["registry", "planner"] });
    expect(again.map((i) => i.issued)).toEqual([undefined, undefined]);
    await issueCertificate({ certDir: home, name: "planner", ttlMs: 60_000 });
    const renewed = await ensureIdentities({ certDir: home, names: ["registry", "planner"] });
    expect(renewed.map((i) => i.issued)).toEqual([undefined, "expiring"]);
    await writeFile(certPaths(home, "registry").key, "garbage");
    expect((await ensureIdentities({ certDir: home, names: ["registry"] }))[0]?.issued).toBe(
      "missing",
    );
    // Another trust domain means another SPIFFE ID: reissue.
    const moved = await ensureIdentities({
      certDir: home,
      names: ["registry"],
      trustDomain: "agentmesh.local",
      namespace: "other",
    });
    expect(moved[0]?.issued).toBe("mismatch");
    await rm(home, { recursive: true });
  });
});

describe("certificate watcher", () => {
  it("fails clearly when the first set is missing", async () => {
    await expect(watchCertificates({ dir: join(dir, "nobody") })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
  });

  it("picks up reissued files by itself and records expiry", async () => {
    await issueCertificate({ certDir: dir, name: "learning" });
    const metrics = createMeshMetrics();
    const certs = await watchCertificates({
      dir: certPaths(dir, "learning").dir,
      pollIntervalMs: 50,
      metrics,
    });
    const before = certs.current.serial;
    const updates: string[] = [];
    certs.onUpdate((s) => updates.push(s.serial));
    // A rotation is also a security event for the SIEM.
    const siem: Record<string, unknown>[] = [];
    const exporter = createSiemExporter({
      sink: { name: "memory", send: async (e) => void siem.push(...e), close: async () => {} },
    });
    setSiemExporter(exporter);
    await issueCertificate({ certDir: dir, name: "learning" });
    await expect.poll(() => certs.current.serial).not.toBe(before);
    expect(updates.at(-1)).toBe(certs.current.serial);
    await exporter.flush();
    setSiemExporter(undefined);
    expect(siem).toContainEqual(
      expect.objectContaining({
        class_uid: 6002,
        activity_id: 8,
        actor: { user: expect.objectContaining({ name: certs.current.spiffeId }) },
      }),
    );
    const expiry = await metrics.certExpiry.get();
    expect(expiry.values[0]?.value).toBe(Math.floor(certs.current.notAfter.getTime() / 1000));
    certs.close();
  });
});
