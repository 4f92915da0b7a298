import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { connect as connectH2 } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSiemExporter } from "../lib/siem/exporter.js";
import { fileSink } from "../lib/siem/file-sink.js";
import { setSiemExporter } from "../lib/siem/siem.js";
import { certPaths, initCa, issueCertificate } from "../lib/tls/dev-ca.js";
import { type Listener, listen } from "./http-edge.js";

describe("public TLS listener", () => {
  let dir: string;
  let ca: Buffer;
  let listener: Listener;
  // Where the listener reads its certificate, as a cert-manager secret volume would hold it.
  const files = () => ({
    certFile: join(dir, "public", "tls.crt"),
    keyFile: join(dir, "public", "tls.key"),
  });
  const issue = async (validity: { notBefore?: Date; ttlMs?: number } = {}) => {
    const issued = await issueCertificate({ certDir: dir, name: "gateway-public", ...validity });
    await copyFile(issued.paths.cert, files().certFile);
    await copyFile(issued.paths.key, files().keyFile);
    return issued.serial.toUpperCase();
  };
  /** The serial number of the certificate a new connection is shown. */
  const servedSerial = () =>
    new Promise<string>((resolve, reject) => {
      const socket = connectTls(
        { host: "127.0.0.1", port: listener.port, ca, servername: "localhost" },
        () => {
          resolve(socket.getPeerCertificate().serialNumber);
          socket.end();
        },
      );
      socket.on("error", reject);
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentmesh-edge-"));
    await initCa({ certDir: dir });
    ca = await readFile(certPaths(dir, "ca").cert);
    await mkdir(join(dir, "public"));
    await issue();
    listener = await listen(
      (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok\n");
      },
      { host: "127.0.0.1", port: 0, tls: { ...files(), pollMs: 100 } },
    );
  });
  afterAll(async () => {
    await listener?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("serves HTTP/2 over TLS and picks up a renewed certificate without a restart", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const session = connectH2(`https://localhost:${listener.port}`, { ca });
      session.on("error", reject);
      const req = session.request({ ":path": "/healthz" });
      let text = "";
      req.on("data", (d: Buffer) => {
        text += d.toString();
      });
      req.on("end", () => {
        session.close();
        resolve(text);
      });
      req.end();
    });
    expect(body).toBe("ok\n");

    const before = await servedSerial();
    const renewed = await issue();
    expect(renewed).not.toBe(before);
    await expect.poll(servedSerial, { timeout: 5000 }).toBe(renewed);
  });

  it("reports a rotation, and a certificate left unrotated, to the SIEM", async () => {
    const sinkFile = join(dir, "siem.jsonl");
    const exporter = createSiemExporter({ sink: fileSink(sinkFile) });
    setSiemExporter(exporter);
    try {
      // Half an hour left of three: whatever renews it did not.
      const hour = 3_600_000;
      const late = await issue({ notBefore: new Date(Date.now() - 2.5 * hour), ttlMs: 3 * hour });
      await expect.poll(servedSerial, { timeout: 5000 }).toBe(late);
      await new Promise((r) => setTimeout(r, 400)); // several polls: still one warning
      expect(await exporter.flush(5000)).toBe(true);
      const events = (await readFile(sinkFile, "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { class_uid: number; metadata: { event_code: string } });
      expect(events.map((e) => [e.metadata.event_code, e.class_uid])).toEqual([
        ["cert.rotated", 6002],
        ["cert.expiring", 2004],
      ]);
    } finally {
      setSiemExporter(undefined);
      await exporter.close(1000);
    }
  });

  it("keeps the last good certificate when the files do not match", async () => {
    const good = await servedSerial();
    // A new certificate beside the old key: not a usable pair.
    const other = await issueCertificate({ certDir: dir, name: "other" });
    await copyFile(other.paths.cert, files().certFile);
    await new Promise((r) => setTimeout(r, 500)); // several polls
    expect(await servedSerial()).toBe(good);
  });
});
