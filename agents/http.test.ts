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

const fetchSkill = (maxBytes = 1_000) =>
  createHttpAgent({ allowHosts: ["127.0.0.1"], maxBytes }).skills["http.fetch"]!.handler;

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

  it("times out as a retryable failure", async () => {
    const err = await Promise.resolve(
      fetchSkill()({ url: `${base}/slow`, timeoutMs: 100 }, testSkillContext()),
    ).catch((e: unknown) => e);
    expect(isAgentError(err) && err.code === "DEADLINE_EXCEEDED" && err.retryable).toBe(true);
  });
});
