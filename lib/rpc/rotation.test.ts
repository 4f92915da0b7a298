/**
 * Certificate rotation without restart: server and client certificates are
 * reissued into their folders while a loop of calls runs; no call may fail,
 * and new connections must use the new certificates.
 */

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshMetrics } from "../telemetry/metrics.js";
import { watchCertificates } from "../tls/cert-watcher.js";
import { createChannel, createClient } from "./client.js";
import { transportKey } from "./context-keys.js";
import type { Interceptor } from "./interceptor.js";
import { createServer } from "./server.js";
import { allowAll, createTestPki, echoImpl, echoService, type TestPki } from "./testing.js";

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki(["registry", "executor"]);
});
afterAll(() => pki.cleanup());

/** The serial of the certificate a server presents to a fresh TLS connection. */
function serverSerial(port: number, clientDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(
      {
        host: "127.0.0.1",
        port,
        ca: readFileSync(join(clientDir, "ca.crt")),
        cert: readFileSync(join(clientDir, "tls.crt")),
        key: readFileSync(join(clientDir, "tls.key")),
        servername: "registry",
        ALPNProtocols: ["h2"],
      },
      () => {
        const serial = socket.getPeerCertificate().serialNumber;
        socket.destroy();
        resolve(serial);
      },
    );
    socket.on("error", reject);
  });
}

describe("certificate rotation", () => {
  it("rotates server and client certificates under a loop of calls with zero failures", async () => {
    const metrics = createMeshMetrics();
    const serverCerts = await watchCertificates({
      dir: pki.path("registry"),
      pollIntervalMs: 100,
      metrics,
    });
    const clientCerts = await watchCertificates({
      dir: pki.path("executor"),
      pollIntervalMs: 100,
      metrics,
    });
    const clientSerials = new Set<string>();
    // Reads the client's certificate the way the identity interceptor does.
    const recordPeer: Interceptor = (next) => (call) => {
      const cert = call.values.get(transportKey)?.getAuthContext().sslPeerCertificate as
        | { serialNumber?: string }
        | undefined;
      if (cert?.serialNumber) clientSerials.add(cert.serialNumber);
      return next(call);
    };
    const server = createServer({
      certs: serverCerts,
      authorizer: allowAll,
      metrics,
      interceptors: [recordPeer],
      // Short-lived connections so clients re-handshake (and present new certificates) during the test.
      maxConnectionAgeMs: 300,
    });
    server.add(echoService(), echoImpl);
    const port = await server.listen();
    const channel = createChannel({
      address: server.address,
      certs: clientCerts,
      server: pki.id("registry"),
      metrics,
    });
    const echo = createClient(echoService(), channel) as unknown as {
      echo(req: { value: Uint8Array }): Promise<unknown>;
    };
    const oldServerSerial = serverCerts.current.serial;
    const oldClientSerial = clientCerts.current.serial;
    expect(await serverSerial(port, pki.path("executor"))).toBe(oldServerSerial);

    let ok = 0;
    const failures: unknown[] = [];
    let running = true;
    const workers = Array.from({ length: 4 }, async () => {
      while (running) {
        try {
          await echo.echo({ value: new Uint8Array([1, 2, 3]) });
          ok++;
        } catch (err) {
          failures.push(err);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    await pki.issue("registry");
    await new Promise((r) => setTimeout(r, 300));
    await pki.issue("executor");
    await expect
      .poll(
        () =>
          serverCerts.current.serial !== oldServerSerial &&
          clientCerts.current.serial !== oldClientSerial,
      )
      .toBe(true);
    // Give the client time to reconnect (max connection age) with its new certificate.
    await expect
      .poll(() => clientSerials.has(clientCerts.current.serial), { timeout: 5000 })
      .toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    running = false;
    await Promise.all(workers);

    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(20);
    expect(clientSerials.has(oldClientSerial)).toBe(true);
    expect(await serverSerial(port, pki.path("executor"))).toBe(serverCerts.current.serial);
    const reloads = await metrics.certReloads.get();
    expect(reloads.values.filter((v) => v.labels.result === "ok").length).toBeGreaterThanOrEqual(2);

    channel.close();
    await server.shutdown(100);
    serverCerts.close();
    clientCerts.close();
  });

  it("keeps serving with the last good pair when the files are half-written", async () => {
    const metrics = createMeshMetrics();
    const serverCerts = await watchCertificates({
      dir: pki.path("registry"),
      pollIntervalMs: 0,
      metrics,
    });
    const server = createServer({ certs: serverCerts, authorizer: allowAll, metrics });
    server.add(echoService(), echoImpl);
    const port = await server.listen();
    const good = serverCerts.current.serial;
    // A new key beside the old certificate: what a reader sees mid-rotation.
    const keyPath = join(pki.path("registry"), "tls.key");
    const savedKey = readFileSync(keyPath);
    await pki.issue("other");
    writeFileSync(keyPath, readFileSync(join(pki.path("other"), "tls.key")));
    expect(await serverCerts.reload()).toBe(false);
    expect(serverCerts.lastError).toMatch(/does not match/);
    const errors = (await metrics.certReloads.get()).values.find(
      (v) => v.labels.result === "error",
    );
    expect(errors?.value).toBe(1);
    // New connections still get the last good certificate and calls succeed.
    expect(await serverSerial(port, pki.path("executor"))).toBe(good);
    const clientCerts = await watchCertificates({ dir: pki.path("executor"), pollIntervalMs: 0 });
    const channel = createChannel({
      address: server.address,
      certs: clientCerts,
      server: pki.id("registry"),
      metrics,
    });
    const echo = createClient(echoService(), channel) as unknown as {
      echo(r: object): Promise<unknown>;
    };
    await expect(echo.echo({ value: new Uint8Array([1]) })).resolves.toBeDefined();
    // Garbage is rejected the same way.
    writeFileSync(keyPath, "-----BEGIN PRIVATE KEY-----\nnot a key\n");
    expect(await serverCerts.reload()).toBe(false);
    writeFileSync(keyPath, savedKey);
    expect(await serverCerts.reload()).toBe(false); // back to the same good set: nothing changed
    expect(serverCerts.lastError).toBeUndefined();
    channel.close();
    await server.shutdown(100);
    serverCerts.close();
    clientCerts.close();
  });
});
