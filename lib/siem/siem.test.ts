import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import { createSiemExporter } from "./exporter.js";
import { httpSink } from "./http-sink.js";
import { toOcsf } from "./ocsf.js";
import { siemSinkFromSettings } from "./siem.js";
import type { SiemSink } from "./sink.js";
import { formatRfc5424, frameOctetCounted, syslogSeverity } from "./syslog-frame.js";

describe("RFC 5424 framing", () => {
  it("formats the header and counts octets, not characters", () => {
    const msg = formatRfc5424({
      severity: 4,
      time: new Date("2026-12-07T10:00:00.000Z"),
      hostName: "host a",
      appName: "agentmesh",
      procId: "42",
      msgId: "auth.failure",
      message: '{"x":"é\\n"}',
    });
    expect(msg).toBe(
      '<108>1 2026-12-07T10:00:00.000Z host_a agentmesh 42 auth.failure - {"x":"é\\n"}',
    );
    const frame = frameOctetCounted(msg).toString("utf8");
    const [len, ...rest] = frame.split(" ");
    expect(Number(len)).toBe(Buffer.byteLength(rest.join(" ")));
    expect(Number(len)).toBe(msg.length + 1); // é is two octets
    expect(syslogSeverity(4)).toBe(3);
    expect(syslogSeverity(1)).toBe(6);
  });
});

describe("OCSF mapping", () => {
  const base = { tenantId: "acme", identity: "acme/bob", traceId: "a".repeat(32), time: 1000 };
  it("maps an authentication failure to Authentication 3002, Logon, Failure", () => {
    const e = toOcsf({ ...base, kind: "auth.failure", message: "unknown API key" });
    expect(e).toMatchObject({
      class_uid: 3002,
      category_uid: 3,
      activity_id: 1,
      type_uid: 300201,
      status_id: 2,
      time: 1000,
      user: { name: "acme/bob" },
      metadata: { version: "1.1.0", tenant_uid: "acme", correlation_uid: "a".repeat(32) },
    });
  });
  it("maps denials to API Activity 6003, admin actions to Entity Management 3004, forgeries to Detection Finding 2004", () => {
    const denial = toOcsf({
      ...base,
      kind: "policy.denial",
      resource: "agentmesh.v1.ExecutorService/SubmitGoal",
      message: "not allowed",
    });
    expect(denial).toMatchObject({
      class_uid: 6003,
      type_uid: 600399,
      status_id: 2,
      api: { operation: "agentmesh.v1.ExecutorService/SubmitGoal" },
      actor: { user: { name: "acme/bob" } },
    });
    const admin = toOcsf({
      ...base,
      kind: "admin.action",
      action: "tenant.created",
      resource: "tenant/acme",
      message: "x",
    });
    expect(admin).toMatchObject({ class_uid: 3004, activity_id: 1, type_uid: 300401 });
    expect(admin.entity).toEqual({ name: "tenant/acme", type: "tenant.created" });
    expect(toOcsf({ ...base, kind: "bus.forged", message: "x" })).toMatchObject({
      class_uid: 2004,
      category_uid: 2,
      severity_id: 4,
    });
    expect(toOcsf({ ...base, kind: "cert.rotated", message: "x" }).class_uid).toBe(6002);
  });
});

describe("exporter", () => {
  it("retries a failing sink without losing events, and drops (counted) beyond capacity without blocking", async () => {
    const got: unknown[] = [];
    let down = true;
    const sink: SiemSink = {
      name: "test",
      async send(events) {
        if (down) throw new Error("down");
        got.push(...events);
      },
      async close() {},
    };
    const registry = new Registry();
    const exporter = createSiemExporter({ sink, capacity: 5, minBackoffMs: 5, registry });
    const started = performance.now();
    for (let i = 0; i < 8; i++) exporter.emit({ kind: "auth.failure", message: `m${i}` });
    expect(performance.now() - started).toBeLessThan(50);
    expect(exporter.stats()).toMatchObject({ queued: 5, dropped: 3 });
    await new Promise((r) => setTimeout(r, 30));
    expect(exporter.stats().failures).toBeGreaterThan(0);
    down = false;
    expect(await exporter.flush(2000)).toBe(true);
    expect(got.map((e) => (e as { message: string }).message)).toEqual([
      "m0",
      "m1",
      "m2",
      "m3",
      "m4",
    ]);
    const text = await registry.metrics();
    expect(text).toMatch(/agentmesh_siem_events_dropped_total\{sink="test"\} 3/);
    await exporter.close();
  });
});

describe("HTTP sink", () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it("POSTs OCSF JSON to a real HTTP server and retries a 503 until it is taken", async () => {
    const received: Record<string, unknown>[] = [];
    let answers = [503, 503];
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        const status = answers.shift() ?? 204;
        if (status < 300) received.push(...(JSON.parse(body) as Record<string, unknown>[]));
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/ocsf`;
    const sink = siemSinkFromSettings({ AGENTMESH_SIEM_SINK: "http", AGENTMESH_SIEM_ADDRESS: url });
    expect(sink?.name).toBe("http");
    const exporter = createSiemExporter({ sink: httpSink({ url }), minBackoffMs: 5 });
    exporter.emit({ kind: "policy.denial", tenantId: "acme", identity: "acme/bob", message: "no" });
    exporter.emit({ kind: "auth.failure", tenantId: "acme", message: "bad key" });
    expect(await exporter.flush(3000)).toBe(true);
    expect(exporter.stats().failures).toBe(2);
    expect(received.map((e) => e.class_uid)).toEqual([6003, 3002]);
    expect(received[0]).toMatchObject({ metadata: { tenant_uid: "acme" } });
    answers = [];
    await exporter.close();
  });

  it("refuses a sink setting without an address, clearly", () => {
    expect(() => siemSinkFromSettings({ AGENTMESH_SIEM_SINK: "syslog" })).toThrow(
      /needs AGENTMESH_SIEM_ADDRESS/,
    );
    expect(() => siemSinkFromSettings({ AGENTMESH_SIEM_SINK: "kafka" })).toThrow(
      /AGENTMESH_SIEM_SINK/,
    );
    expect(siemSinkFromSettings({})).toBeUndefined();
  });
});
