import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isAgentError } from "../sdk/agent/agent-error.js";
import { testSkillContext } from "../sdk/agent/test-context.js";
import { createHttpAgent, hostAllowed } from "./http.js";

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === "/big") return res.end("z".repeat(10_000));
    if (req.url === "/away") {
      res.writeHead(302, { location: "http://example.invalid/" });
      return res.end();
    }
    if (req.url === "/slow") return setTimeout(() => res.end("late"), 2_000);
    if (req.url === "/slow-body") {
      res.write("first part ");
      return setTimeout(() => res.end("late"), 2_000);
    }
    if (req.url === "/missing") {
      res.writeHead(404);
      return res.end("no");
    }
    if (req.url === "/busy") {
      res.writeHead(503);
      return res.end("later");
    }
    if (req.url === "/binary") return res.end(Buffer.alloc(3_000, 0xff));
    res.setHeader("content-type", "text/plain");
    res.end(`hello ${req.method}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server.closeAllConnections();
  server.close();
});

// The test server listens on loopback, which only an explicit CIDR opens.
const fetchSkill = (maxBytes = 1_000) =>
  createHttpAgent({ allowHosts: ["127.0.0.1"], allowCidrs: ["127.0.0.1/32"], maxBytes }).skills[
    "http.fetch"
  ]!.handler;

const failure = (p: unknown) => Promise.resolve(p).catch((e: unknown) => e);

describe("http agent", () => {
  it("matches hosts against the allowlist", () => {
    expect(hostAllowed("api.example.com", ["*.example.com"])).toBe(true);
    expect(hostAllowed("example.com", ["*.example.com"])).toBe(false);
    expect(hostAllowed("EXAMPLE.org", ["example.org"])).toBe(true);
    expect(hostAllowed("evil-example.com", ["*.example.com"])).toBe(false);
  });

  it("fetches from an allowed host", async () => {
    const out = await fetchSkill()({ url: `${base}/` }, testSkillContext());
    expect(out).toMatchObject({ status: 200, body: "hello GET", truncated: false });
  });

  it("caps the body and refuses hosts and redirects off the list", async () => {
    expect(await fetchSkill(100)({ url: `${base}/big` }, testSkillContext())).toMatchObject({
      bytes: 100,
      truncated: true,
    });
    for (const url of ["http://localhost:1/", `${base}/away`, "file:///etc/passwd"]) {
      const err = await Promise.resolve(fetchSkill()({ url }, testSkillContext())).catch(
        (e: unknown) => e,
      );
      expect(isAgentError(err) && err.code === "PERMISSION_DENIED" && !err.retryable, url).toBe(
        true,
      );
    }
  });

  it("times out, waiting for headers or for the body, as a terminal failure", async () => {
    for (const path of ["/slow", "/slow-body"]) {
      const err = await failure(
        fetchSkill()({ url: `${base}${path}`, timeoutMs: 300 }, testSkillContext()),
      );
      expect(err, path).toMatchObject({ code: "DEADLINE_EXCEEDED", retryable: false });
    }
  });

  it("ends on 4xx, tries 5xx again", async () => {
    expect(
      await failure(fetchSkill()({ url: `${base}/missing` }, testSkillContext())),
    ).toMatchObject({
      code: "HTTP_404",
      retryable: false,
    });
    expect(await failure(fetchSkill()({ url: `${base}/busy` }, testSkillContext()))).toMatchObject({
      code: "HTTP_503",
      retryable: true,
    });
  });

  it("cuts the body as text, so invalid bytes cannot grow it past the cap", async () => {
    const out = (await fetchSkill(1_000)({ url: `${base}/binary` }, testSkillContext())) as {
      body: string;
      truncated: boolean;
    };
    expect(Buffer.byteLength(out.body)).toBeLessThanOrEqual(1_000);
    expect(out.truncated).toBe(true);
  });

  it("refuses loopback without the CIDR, even for an allowed host", async () => {
    const strict = createHttpAgent({ allowHosts: ["127.0.0.1", "localhost"] }).skills["http.fetch"]!
      .handler;
    for (const url of [`${base}/`, "http://localhost:1/"]) {
      expect(await failure(strict({ url }, testSkillContext())), url).toMatchObject({
        code: "PERMISSION_DENIED",
        retryable: false,
      });
    }
  });
});
