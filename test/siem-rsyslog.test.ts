/**
 * The syslog sink against a real receiver: Debian's rsyslogd with imtcp over
 * gtls (TLS, octet-counted RFC 5424), a certificate from the dev CA, its own
 * config, work dir and pid file on a free port. Events sent before, during
 * and after a receiver restart all arrive (at least once).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSiemExporter, type SiemExporter } from "../lib/siem/exporter.js";
import { syslogSink } from "../lib/siem/syslog-sink.js";
import { certPaths, initCa, issueCertificate } from "../lib/tls/dev-ca.js";

const rsyslogd = ["/usr/sbin/rsyslogd", "/usr/bin/rsyslogd"].find((p) => existsSync(p));
const hasGtls = spawnSync("sh", ["-c", "ls /usr/lib/*/rsyslog/lmnsd_gtls.so"]).status === 0;

let dir: string;
let port: number;
let ca: string;
let rsyslog: ChildProcess | undefined;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const p = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return p;
}

async function startRsyslog(): Promise<void> {
  rsyslog = spawn(
    rsyslogd!,
    ["-n", "-f", join(dir, "rsyslog.conf"), "-i", join(dir, "rsyslog.pid")],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  // Listening once a TLS handshake succeeds.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tlsConnect({ port, host: "127.0.0.1", servername: "localhost", ca });
      s.once("secureConnect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error("rsyslogd did not listen");
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopRsyslog(): Promise<void> {
  const child = rsyslog!;
  rsyslog = undefined;
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

async function received(): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(dir, "out.log"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l.trim()) as Record<string, unknown>);
}

async function waitFor(ids: string[], timeoutMs = 10_000): Promise<Set<string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = new Set((await received()).map((e) => String(e.message)));
    if (ids.every((id) => got.has(id)) || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!rsyslogd || !hasGtls)("SIEM syslog sink to rsyslog over TLS", () => {
  let exporter: SiemExporter;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentmesh-rsyslog-"));
    const certDir = join(dir, "certs");
    await initCa({ certDir });
    await issueCertificate({ certDir, name: "siem-receiver" });
    const paths = certPaths(certDir, "siem-receiver");
    ca = await readFile(paths.ca, "utf8");
    port = await freePort();
    await mkdir(join(dir, "work"));
    await writeFile(
      join(dir, "rsyslog.conf"),
      `global(workDirectory="${join(dir, "work")}"
  defaultNetstreamDriver="gtls"
  defaultNetstreamDriverCAFile="${paths.ca}"
  defaultNetstreamDriverCertFile="${paths.cert}"
  defaultNetstreamDriverKeyFile="${paths.key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="${port}" address="127.0.0.1")
template(name="msgonly" type="string" string="%msg%\\n")
action(type="omfile" file="${join(dir, "out.log")}" template="msgonly")
`,
    );
    await startRsyslog();
    exporter = createSiemExporter({
      sink: syslogSink({
        host: "127.0.0.1",
        port,
        serverName: "localhost",
        ca,
      }),
      minBackoffMs: 50,
      maxBackoffMs: 200,
    });
  }, 30_000);
  afterAll(async () => {
    await exporter?.close(1000);
    if (rsyslog) await stopRsyslog();
    await rm(dir, { recursive: true, force: true });
  });

  it("delivers OCSF events, and none is lost across a receiver restart", async () => {
    const before = Array.from({ length: 20 }, (_, i) => `before-${i}`);
    for (const m of before) {
      exporter.emit({
        kind: "auth.failure",
        tenantId: "acme",
        identity: "acme/bob",
        traceId: "0af7651916cd43dd8448eb211c80319c",
        message: m,
      });
    }
    expect(await exporter.flush(5000)).toBe(true);
    const got = await waitFor(before);
    expect(before.filter((m) => !got.has(m))).toEqual([]);
    const first = (await received())[0]!;
    expect(first).toMatchObject({
      class_uid: 3002,
      type_uid: 300201,
      user: { name: "acme/bob" },
      metadata: { tenant_uid: "acme", correlation_uid: "0af7651916cd43dd8448eb211c80319c" },
    });

    await stopRsyslog();
    await new Promise((r) => setTimeout(r, 200)); // the sink sees the connection close
    const during = Array.from({ length: 30 }, (_, i) => `during-${i}`);
    for (const m of during) exporter.emit({ kind: "policy.denial", tenantId: "acme", message: m });
    await new Promise((r) => setTimeout(r, 500)); // sends fail and are retried
    expect(exporter.stats().queued).toBe(30);
    expect(exporter.stats().failures).toBeGreaterThan(0);

    await startRsyslog();
    const after = ["after-0", "after-1"];
    for (const m of after) exporter.emit({ kind: "bus.forged", tenantId: "acme", message: m });
    expect(await exporter.flush(10_000)).toBe(true);
    const all = [...before, ...during, ...after];
    const final = await waitFor(all);
    expect(all.filter((m) => !final.has(m))).toEqual([]);
    expect(exporter.stats().dropped).toBe(0);
  }, 30_000);
});
