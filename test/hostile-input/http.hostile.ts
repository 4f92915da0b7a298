/**
 * Hostile http.fetch jobs through the real agent runtime on real JetStream.
 * An "internal" server listens on 127.0.0.1 and counts requests; a
 * "public" one on 127.0.0.2 (the only range opened by CIDR) redirects and
 * serves huge bodies. Every encoding of a loopback, private, link-local or
 * metadata address — decimal, octal, hex and short IPv4 forms, IPv4-mapped
 * IPv6, 0.0.0.0, names resolving to loopback, redirect chains ending there —
 * is refused as a terminal PERMISSION_DENIED although its host is on the host
 * allowlist, and the internal server sees no request. Huge bodies come back
 * cut to fit the bus, once; bad URLs, 4xx and body timeouts end terminally.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpAgent } from "../../agents/http.js";
import { needNats } from "../../lib/testing/infra.js";
import { type HostileCase, runOnBus } from "./agent-on-bus.js";

const nats = await needNats();
let internalHits = 0;
let internal: Server;
let outside: Server;
let ip: number; // internal port
let op: number; // outside port

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port)),
  );
}

beforeAll(async () => {
  internal = createServer((_req, res) => {
    internalHits++;
    res.end("internal secret");
  });
  ip = await listen(internal, "127.0.0.1");
  outside = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const to = url.searchParams.get("to");
    if (url.pathname === "/redirect" && to) {
      res.writeHead(302, { location: to });
      return res.end();
    }
    if (url.pathname === "/huge") return res.end("h".repeat(5 << 20));
    if (url.pathname === "/binary") return res.end(Buffer.alloc(1 << 20, 0xfe));
    if (url.pathname === "/missing") {
      res.writeHead(404);
      return res.end();
    }
    if (url.pathname === "/slow-body") {
      res.write("part");
      return setTimeout(() => res.end(), 5_000);
    }
    res.end("ok");
  });
  op = await listen(outside, "127.0.0.2");
});
afterAll(() => {
  for (const s of [internal, outside]) {
    s?.closeAllConnections();
    s?.close();
  }
});

describe.skipIf(!nats)("hostile http.fetch through the agent runtime on JetStream", () => {
  it("refuses every internal address however it is written or reached", {
    timeout: 120_000,
  }, async () => {
    const pub = `http://127.0.0.2:${op}`;
    const redirect = (to: string) => `${pub}/redirect?to=${encodeURIComponent(to)}`;
    const urls = [
      `http://127.0.0.1:${ip}/`,
      `http://2130706433:${ip}/`,
      `http://0x7f.0.0.1:${ip}/`,
      `http://0177.0.0.1:${ip}/`,
      `http://127.1:${ip}/`,
      `http://[::1]:${ip}/`,
      `http://[::ffff:127.0.0.1]:${ip}/`,
      `http://[::ffff:7f00:1]:${ip}/`,
      `http://0.0.0.0:${ip}/`,
      `http://0:${ip}/`,
      `http://localhost:${ip}/`,
      "http://169.254.169.254/latest/meta-data/",
      "http://[fd00:ec2::254]/latest/meta-data/",
      "http://10.0.0.1/",
      "http://100.64.0.1/",
      "http://224.0.0.1/",
      redirect("http://169.254.169.254/latest/meta-data/iam/"),
      redirect(`http://localhost:${ip}/`),
      redirect(`http://[::ffff:127.0.0.1]:${ip}/`),
      redirect(redirect(redirect(`http://2130706433:${ip}/`))),
    ];
    const hosts = new Set(urls.map((u) => new URL(u).hostname.replace(/^\[|\]$/g, "")));
    const agent = createHttpAgent({ allowHosts: [...hosts], allowCidrs: ["127.0.0.2/32"] });
    const cases: HostileCase[] = urls.map((url) => ({ name: url, input: { url } }));
    const { outcomes, health } = await runOnBus({
      natsUrl: nats!.url,
      agent,
      capability: "http.fetch",
      cases,
      batch: 4,
      timeoutMs: 15_000,
      warmUp: { url: `http://127.0.0.2:${op}/` },
    });
    for (const row of outcomes) {
      expect(row, row.name).toMatchObject({
        status: "FAILED",
        code: "PERMISSION_DENIED",
        retryable: false,
        calls: 1,
        finals: 1,
      });
      expect(row.message).not.toContain("internal secret");
    }
    expect(internalHits).toBe(0);
    expect(health.failed).toBe(0);
    expect(health.maxMs, JSON.stringify(health)).toBeLessThan(100);
  });

  it("cuts huge bodies to fit the bus and ends bad requests terminally, once", {
    timeout: 120_000,
  }, async () => {
    const pub = `http://127.0.0.2:${op}`;
    const agent = createHttpAgent({ allowHosts: ["127.0.0.2"], allowCidrs: ["127.0.0.2/32"] });
    const { outcomes } = await runOnBus({
      natsUrl: nats!.url,
      agent,
      capability: "http.fetch",
      cases: [
        { name: "5 MiB body", input: { url: `${pub}/huge` } },
        { name: "1 MiB of invalid UTF-8", input: { url: `${pub}/binary` } },
        { name: "404", input: { url: `${pub}/missing` } },
        { name: "slow body", input: { url: `${pub}/slow-body`, timeoutMs: 500 } },
        { name: "not a URL", input: { url: "http://[::1" } },
        { name: "not http", input: { url: "file:///etc/passwd" } },
      ],
      batch: 2,
      timeoutMs: 15_000,
      warmUp: { url: `http://127.0.0.2:${op}/` },
    });
    const [huge, binary, missing, slow, bad, file] = outcomes;
    for (const big of [huge!, binary!]) {
      expect(big, big.name).toMatchObject({ status: "SUCCEEDED", calls: 1, finals: 1 });
      const out = JSON.parse(big.output!) as { body: string; truncated: boolean };
      expect(out.truncated).toBe(true);
      expect(Buffer.byteLength(out.body)).toBeLessThanOrEqual(256 * 1024);
    }
    expect(missing).toMatchObject({
      status: "FAILED",
      code: "HTTP_404",
      retryable: false,
      calls: 1,
    });
    expect(slow).toMatchObject({
      status: "FAILED",
      code: "DEADLINE_EXCEEDED",
      retryable: false,
      calls: 1,
    });
    // Refused by the input schema (format uri) before the handler runs.
    expect(bad).toMatchObject({
      status: "FAILED",
      code: "INVALID_ARGUMENT",
      retryable: false,
      finals: 1,
    });
    expect(file).toMatchObject({
      status: "FAILED",
      code: "PERMISSION_DENIED",
      retryable: false,
      calls: 1,
    });
  });
});
