/**
 * Bad input at the gateway, sent as raw HTTP so nothing client-side fixes it
 * up: each gets the right Connect code and a helpful message, the gateway
 * stays up, and nothing is half-written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "./gateway-fixture.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("gateway bad input", () => {
  let f: GatewayFixture;
  beforeAll(async () => {
    f = await startGatewayFixture({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      maxRequestBytes: 64 * 1024,
    });
  }, 60_000);
  afterAll(() => f?.close());

  const post = async (
    path: string,
    body: string | Uint8Array,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; code: string; message: string }> => {
    const res = await fetch(`${f.url}/agentmesh.v1.${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${f.keys.acmeWriter}`,
        ...headers,
      },
      body,
    });
    const text = await res.text();
    let parsed: { code?: string; message?: string } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      parsed = { code: "", message: text };
    }
    return { status: res.status, code: parsed.code ?? "ok", message: parsed.message ?? "" };
  };

  const cases: [string, string, string | Uint8Array, Record<string, string>, string, RegExp?][] = [
    ["malformed JSON", "ExecutorService/SubmitGoal", '{"kind": ', {}, "invalid_argument"],
    [
      "unknown field",
      "ExecutorService/SubmitGoal",
      '{"kind":"x","bogus":1}',
      {},
      "invalid_argument",
      /bogus/,
    ],
    ["wrong type", "ExecutorService/SubmitGoal", '{"kind": 5}', {}, "invalid_argument"],
    [
      "wrong type in struct",
      "ExecutorService/SubmitGoal",
      '{"kind":"x","input":[1]}',
      {},
      "invalid_argument",
    ],
    [
      "invalid enum",
      "ExecutorService/ListGoals",
      '{"statuses":["GOAL_STATUS_NOPE"]}',
      {},
      "invalid_argument",
    ],
    // The edge keeps an unknown enum number (proto3 open enums); the executor refuses it.
    [
      "enum number out of range",
      "ExecutorService/ListGoals",
      '{"statuses":[99]}',
      {},
      "invalid_argument",
      /invalid goal status 99/,
    ],
    ["JSON array body", "ExecutorService/SubmitGoal", "[]", {}, "invalid_argument"],
    [
      "invalid UTF-8",
      "ExecutorService/SubmitGoal",
      Uint8Array.from([...Buffer.from('{"kind":"'), 0xff, 0xfe, ...Buffer.from('"}')]),
      {},
      "invalid_argument",
      /body is not valid UTF-8/,
    ],
    [
      "malformed protobuf",
      "ExecutorService/SubmitGoal",
      Uint8Array.from([0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]),
      { "content-type": "application/proto" },
      "invalid_argument",
    ],
    [
      "oversized body",
      "ExecutorService/SubmitGoal",
      JSON.stringify({ kind: "x", input: { blob: "a".repeat(100 * 1024) } }),
      {},
      "resource_exhausted",
    ],
    ["unknown method", "ExecutorService/Nope", "{}", {}, "unimplemented"],
    ["internal-only method", "RegistryService/RegisterAgent", "{}", {}, "unimplemented"],
    [
      "deadline above the maximum",
      "ExecutorService/ListGoals",
      "{}",
      { "connect-timeout-ms": "86400000" },
      "invalid_argument",
    ],
    [
      "bad deadline",
      "ExecutorService/ListGoals",
      "{}",
      { "connect-timeout-ms": "soon" },
      "invalid_argument",
    ],
    [
      "garbage bearer",
      "ExecutorService/ListGoals",
      "{}",
      { authorization: "Bearer" },
      "unauthenticated",
    ],
    [
      "basic auth",
      "ExecutorService/ListGoals",
      "{}",
      { authorization: "Basic dTpw" },
      "unauthenticated",
    ],
    [
      "huge credential",
      "ExecutorService/ListGoals",
      "{}",
      { authorization: `Bearer am_${"x".repeat(9000)}` },
      "unauthenticated",
    ],
  ];

  for (const [name, path, body, headers, code, message] of cases) {
    it(`${name} → ${code}`, async () => {
      const r = await post(path, body, headers);
      // Connect's unknown routes are HTTP 404 (what Connect clients read as UNIMPLEMENTED).
      if (code === "unimplemented") expect(r.status).toBe(404);
      expect(r.code, r.message).toBe(code);
      if (message) expect(r.message).toMatch(message);
    });
  }

  it("stays up and wrote nothing", async () => {
    const health = await fetch(`${f.url}/healthz`);
    expect(health.status).toBe(200);
    const list = await post("ExecutorService/ListGoals", "{}");
    expect(list.status).toBe(200);
    const goals = await fetch(`${f.url}/agentmesh.v1.ExecutorService/ListGoals`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": f.keys.acmeWriter },
      body: "{}",
    }).then((r) => r.json() as Promise<{ goals?: unknown[] }>);
    expect(goals.goals ?? []).toHaveLength(0);
  });
});
