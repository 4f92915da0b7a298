/**
 * Fuzzing an internal service over mutual TLS: the real registry component
 * (started as `agentmesh serve registry` starts it, on a private schema),
 * called with raw HTTP/2 frames under the `cli` identity so every input gets
 * past the policy to the decoder and the handler. Random and mutated
 * protobuf, lying and truncated envelopes, reserved flags, wrong content
 * types and absurd `grpc-timeout` values: every answer must carry a sensible
 * gRPC status (never UNKNOWN, INTERNAL or DATA_LOSS for bad input), memory
 * must stay bounded, and a normal call must work afterwards.
 */
import { readFile } from "node:fs/promises";
import type { ClientHttp2Session } from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FindAgentsRequestSchema,
  HeartbeatRequestSchema,
  ListAgentsRequestSchema,
  ListAgentsResponseSchema,
  RegisterAgentRequestSchema,
} from "../../gen/agentmesh/v1/registry_pb.js";
import { needNats, needPostgres } from "../../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../../lib/testing/mesh.js";
import { certPaths } from "../../lib/tls/dev-ca.js";
import {
  absurdGrpcTimeouts,
  collectGarbage,
  envelope,
  fuzzFor,
  h2Request,
  judgeGrpc,
  memoryMiB,
  openH2,
  protoBytes,
  wrongContentTypes,
} from "./inputs.js";

const pg = await needPostgres();
const nats = await needNats();
const budgetMs = Number(process.env.FUZZ_BUDGET_MS ?? 5_000);

const paths = [
  "/agentmesh.v1.RegistryService/RegisterAgent",
  "/agentmesh.v1.RegistryService/Heartbeat",
  "/agentmesh.v1.RegistryService/GetAgent",
  "/agentmesh.v1.RegistryService/ListAgents",
  "/agentmesh.v1.RegistryService/FindAgents",
  "/agentmesh.v1.RegistryService/WatchAgents",
  "/agentmesh.v1.RegistryService/ListTools",
  "/agentmesh.v1.RegistryService/Nope",
  "/grpc.health.v1.Health/Check",
];
const valid = [
  toBinary(
    RegisterAgentRequestSchema,
    create(RegisterAgentRequestSchema, {
      instanceId: "fuzz-1",
      card: {
        name: "test",
        version: "1.0.0",
        description: "fuzz",
        skills: [{ capability: "test.fuzz", description: "x" }],
      },
    }),
  ),
  toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { agentId: "a1", inFlight: 3 })),
  toBinary(FindAgentsRequestSchema, create(FindAgentsRequestSchema, { capability: "util.echo" })),
];

describe.skipIf(!pg || !nats)("fuzz: an internal service (registry) over mTLS", () => {
  let mesh: TestMesh;
  let h2: ClientHttp2Session;
  const byCode = new Map<string, number>();
  const bad: string[] = [];
  let inputs = 0;

  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      components: ["registry"],
    });
    const files = certPaths(mesh.certDir, "cli");
    const address = mesh.runtime.endpoint("registry").address;
    h2 = await openH2(`https://${address}`, {
      cert: await readFile(files.cert),
      key: await readFile(files.key),
      ca: await readFile(files.ca),
      // The server's identity is a SPIFFE URI, not a host name; the mesh checks it, not TLS.
      checkServerIdentity: () => undefined,
    });
  }, 120_000);

  afterAll(async () => {
    h2?.close();
    await mesh?.stop();
    console.log(
      `fuzz internal (registry over mTLS) — ${inputs} inputs, codes ${JSON.stringify(Object.fromEntries(byCode))}`,
    );
  });

  it("answers random, truncated and mislabelled frames with sensible codes", {
    timeout: budgetMs * 3 + 60_000,
  }, async () => {
    const input = fc.record({
      path: fc.constantFrom(...paths),
      payload: protoBytes(valid),
      flags: fc.constantFrom(0, 0, 0, 0, 1, 0x80, 0xff),
      lie: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { freq: 4 }),
      cut: fc.option(fc.nat({ max: 6 }), { freq: 6 }),
      twice: fc.boolean(),
      contentType: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom("application/grpc", "application/grpc+proto") },
        { weight: 1, arbitrary: wrongContentTypes },
      ),
      timeout: fc.option(absurdGrpcTimeouts, { freq: 3 }),
      encoding: fc.option(fc.constantFrom("gzip", "snappy", "identity"), { freq: 6 }),
      // A really gzipped frame: whole, cut short, or a bomb (a few KiB inflating to 64 MiB).
      gzip: fc.option(fc.constantFrom("whole", "truncated", "bomb"), { freq: 4 }),
    });
    const bomb = gzipSync(Buffer.alloc(64 << 20), { level: 9 });
    collectGarbage();
    const before = memoryMiB();
    await fuzzFor("internal", input, budgetMs, async (x) => {
      let body = envelope(x.payload, x.flags, x.lie ?? x.payload.byteLength);
      if (x.gzip) {
        const zipped = x.gzip === "bomb" ? bomb : gzipSync(x.payload);
        body = envelope(
          x.gzip === "truncated" ? zipped.subarray(0, zipped.length >> 1) : zipped,
          1,
        );
      }
      // Two messages on a unary call is a protocol error too.
      if (x.twice) body = Buffer.concat([body, envelope(x.payload)]);
      if (x.cut !== null) body = body.slice(0, x.cut);
      const headers: Record<string, string> = {
        "content-type": x.contentType,
        "grpc-timeout": x.timeout ?? "3S",
      };
      if (x.encoding) headers["grpc-encoding"] = x.encoding;
      if (x.gzip) headers["grpc-encoding"] = "gzip";
      const a = await h2Request(h2, x.path, headers, body, 10_000);
      inputs++;
      // A watch with a valid, long deadline is rightly still streaming. grpc-js sends the
      // response headers with the first message, so a watch with nothing to report yet
      // (an empty registry) has no :status either.
      const streaming =
        a.timedOut && (a.status === 200 || a.status === 0) && x.path.endsWith("/WatchAgents");
      const code = streaming
        ? "open-stream"
        : a.timedOut
          ? "no-answer"
          : String(a.grpcStatus ?? `http-${a.status}`);
      byCode.set(code, (byCode.get(code) ?? 0) + 1);
      const message = decodeURIComponent(a.grpcMessage);
      const verdict = streaming
        ? undefined
        : a.timedOut
          ? "no answer in 10 s"
          : judgeGrpc(a.status, a.grpcStatus, {
              flags: x.gzip ? 1 : x.cut === null || x.cut > 0 ? x.flags : 0,
              message,
            });
      if (verdict && bad.length < 20)
        bad.push(
          `${verdict}: ${x.path} gzip=${x.gzip} flags=${x.flags} lie=${x.lie} cut=${x.cut} twice=${x.twice} enc=${x.encoding} timeout=${x.timeout} ${x.payload.byteLength}B ${JSON.stringify(message)}`,
        );
    });
    expect(bad).toEqual([]);
    expect(inputs).toBeGreaterThan(50);

    collectGarbage();
    const after = memoryMiB();
    console.log(
      `fuzz internal — memory MiB before ${JSON.stringify(before)} after ${JSON.stringify(after)}`,
    );
    expect(after.heapUsed - before.heapUsed).toBeLessThan(128);
    expect(after.rss - before.rss).toBeLessThan(384);

    // Still serving: a normal call over the same connection.
    const ok = await h2Request(
      h2,
      "/agentmesh.v1.RegistryService/ListAgents",
      { "content-type": "application/grpc" },
      envelope(toBinary(ListAgentsRequestSchema, create(ListAgentsRequestSchema, {}))),
    );
    expect(ok.grpcStatus).toBe(0);
    expect(() => fromBinary(ListAgentsResponseSchema, ok.body.subarray(5))).not.toThrow();
  });
});
