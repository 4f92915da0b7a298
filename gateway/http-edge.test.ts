import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { connect as connectH2 } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as connectTls } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
  const issue = async () => {
    const issued = await issueCertificate({ certDir: dir, name: "gateway-public" });
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

  it("keeps the last good certificate when the files do not match", async () => {
    const good = await servedSerial();
    // A new certificate beside the old key: not a usable pair.
    const other = await issueCertificate({ certDir: dir, name: "other" });
    await copyFile(other.paths.cert, files().certFile);
    await new Promise((r) => setTimeout(r, 500)); // several polls
    expect(await servedSerial()).toBe(good);
  });
});
