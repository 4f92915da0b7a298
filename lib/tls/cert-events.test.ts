/**
 * Certificate rotations and expiry warnings reach the SIEM as OCSF events
 * from a watched identity (real dev-CA certificates, the real file sink): a
 * rotation (Application Lifecycle), a certificate still in use in the last
 * third of its lifetime (Detection Finding, Medium) and one past its end
 * (Detection Finding, High), each reported once however often it is polled.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { captureSiemEvents, type SiemCapture } from "../testing/siem-capture.js";
import { expiryState, watchCertificates } from "./cert-watcher.js";
import { certPaths, initCa, issueCertificate } from "./dev-ca.js";

interface OcsfLine {
  class_uid: number;
  severity_id: number;
  metadata: { event_code: string };
  actor: { user: { name: string } };
  unmapped: { serial: string; secondsLeft?: number };
}

const hour = 3_600_000;

describe("certificate security events", () => {
  let siem: SiemCapture;
  beforeAll(async () => {
    siem = await captureSiemEvents();
  });
  afterAll(async () => {
    await siem?.close();
  });

  it("knows when a certificate is in the last third of its lifetime or past it", () => {
    const notBefore = new Date(0);
    const notAfter = new Date(3 * hour);
    expect(expiryState({ notBefore, notAfter }, 1.9 * hour)).toBeUndefined();
    expect(expiryState({ notBefore, notAfter }, 2.1 * hour)).toBe("expiring");
    expect(expiryState({ notBefore, notAfter }, 3 * hour)).toBe("expired");
  });

  it("reports a rotation, then a certificate left unrotated, then an expired one, once each", async () => {
    const certDir = await mkdtemp(join(tmpdir(), "agentmesh-cert-events-"));
    onTestFinished(() => rm(certDir, { recursive: true, force: true }));
    await initCa({ certDir });
    const issue = (notBeforeAgoMs: number, ttlMs: number) =>
      issueCertificate({
        certDir,
        name: "planner",
        ttlMs,
        notBefore: new Date(Date.now() - notBeforeAgoMs),
      });
    await issue(60_000, 3 * hour);
    const certs = await watchCertificates({
      dir: certPaths(certDir, "planner").dir,
      pollIntervalMs: 20,
    });
    const fresh = certs.current.serial;

    // Rotated to a certificate with half an hour of its three left: nothing renewed it.
    // (The watcher has the serial as node:crypto prints it, in upper-case hex.)
    const expiring = (await issue(2.5 * hour, 3 * hour)).serial.toUpperCase();
    await expect.poll(() => certs.current.serial, { timeout: 10_000 }).toBe(expiring);
    // Many polls later it is still reported once.
    await new Promise((r) => setTimeout(r, 300));
    const expired = (await issue(2 * hour, hour)).serial.toUpperCase();
    await expect.poll(() => certs.current.serial, { timeout: 10_000 }).toBe(expired);
    await new Promise((r) => setTimeout(r, 300));
    certs.close();

    const events = await siem.events<OcsfLine>();
    expect(events.map((e) => [e.metadata.event_code, e.unmapped.serial])).toEqual([
      ["cert.rotated", expiring],
      ["cert.expiring", expiring],
      ["cert.rotated", expired],
      ["cert.expired", expired],
    ]);
    expect(events.some((e) => e.unmapped.serial === fresh)).toBe(false);
    const [rotated, warning, , gone] = events;
    expect(rotated).toMatchObject({ class_uid: 6002, severity_id: 1 });
    expect(warning).toMatchObject({ class_uid: 2004, severity_id: 3 });
    expect(gone).toMatchObject({ class_uid: 2004, severity_id: 4 });
    expect(warning?.unmapped.secondsLeft).toBeGreaterThan(0);
    expect(gone?.unmapped.secondsLeft).toBeLessThan(0);
    for (const e of events) {
      expect(e.actor.user.name).toBe("spiffe://agentmesh.local/ns/agentmesh/sa/planner");
    }
  }, 60_000);
});
