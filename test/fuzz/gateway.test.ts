/**
 * Fuzzing the gateway in all three protocols — Connect (unary JSON and proto,
 * streaming envelopes), gRPC over h2c and gRPC-Web over HTTP/1.1 — with
 * random and mutated protobuf, broken and pathological JSON, invalid UTF-8,
 * envelopes that lie about their length, wrong content types and absurd
 * deadlines. Every answer must carry a sensible code (never INTERNAL,
 * UNKNOWN or a 5xx for bad input), memory must stay bounded, and a normal
 * call must still work afterwards. The budget is time-boxed for CI
 * (FUZZ_BUDGET_MS per protocol, default 5 s).
 */
import type { ClientHttp2Session } from "node:http2";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GetGoalRequestSchema,
  ListGoalsRequestSchema,
  SubmitGoalRequestSchema,
  WatchGoalRequestSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";
import { needNats, needPostgres } from "../../lib/testing/infra.js";
import { type GatewayFixture, startGatewayFixture } from "../gateway-fixture.js";
import {
  absurdConnectTimeouts,
  absurdGrpcTimeouts,
  collectGarbage,
  envelope,
  fuzzFor,
  h2Request,
  http1Post,
  jsonBodies,
  judgeConnect,
  judgeGrpc,
  memoryMiB,
  openH2,
  protoBytes,
  wrongContentTypes,
} from "./inputs.js";

const pg = await needPostgres();
const nats = await needNats();
const budgetMs = Number(process.env.FUZZ_BUDGET_MS ?? 5_000);

const unaryPaths = [
  "/agentmesh.v1.ExecutorService/SubmitGoal",
  "/agentmesh.v1.ExecutorService/GetGoal",
  "/agentmesh.v1.ExecutorService/ListGoals",
  "/agentmesh.v1.ExecutorService/CancelGoal",
  "/agentmesh.v1.RegistryService/FindAgents",
  "/agentmesh.v1.PlannerService/ExplainPlan",
  "/agentmesh.v1.LearningService/GetStrategyStats",
  "/agentmesh.v1.AdminService/ListApiKeys",
  "/agentmesh.v1.RegistryService/RegisterAgent", // not public
  "/agentmesh.v1.Nope/Nope",
];
const streamPath = "/agentmesh.v1.ExecutorService/WatchGoal";

const validProto = [
  toBinary(
    SubmitGoalRequestSchema,
    create(SubmitGoalRequestSchema, {
      tenantId: "acme",
      kind: "echo",
      idempotencyKey: "k1",
      labels: { a: "b" },
    }),
  ),
  toBinary(GetGoalRequestSchema, create(GetGoalRequestSchema, { tenantId: "acme", goalId: "g1" })),
  toBinary(
    ListGoalsRequestSchema,
    create(ListGoalsRequestSchema, { tenantId: "acme", pageSize: 5 }),
  ),
  toBinary(
    WatchGoalRequestSchema,
    create(WatchGoalRequestSchema, { tenantId: "acme", goalId: "g" }),
  ),
];
const validJson = [
  '{"tenantId":"acme","kind":"echo","input":{"message":"hi"},"labels":{"a":"b"}}',
  '{"tenantId":"acme","goalId":"g1"}',
  '{"tenantId":"acme","pageSize":5,"statuses":["GOAL_STATUS_RUNNING"]}',
];

interface Tally {
  inputs: number;
  byCode: Map<string, number>;
  bad: string[];
  slowest?: { ms: number; input: string };
}
const tally = (): Tally => ({ inputs: 0, byCode: new Map(), bad: [] });
const count = (t: Tally, code: string, verdict: string | undefined, what: string) => {
  t.inputs++;
  t.byCode.set(code, (t.byCode.get(code) ?? 0) + 1);
  if (verdict && t.bad.length < 20) t.bad.push(`${verdict}: ${what}`);
};
const describeBody = (b: string | Uint8Array) =>
  typeof b === "string"
    ? `${b.length} chars ${JSON.stringify(b.slice(0, 60))}`
    : `${b.byteLength} bytes`;

/** The Connect error code of an answer: JSON error body, or the end-of-stream frame. */
function connectCode(status: number, contentType: string, body: Buffer): string {
  if (contentType.startsWith("application/connect+")) {
    let at = 0;
    while (at + 5 <= body.length) {
      const flags = body[at]!;
      const len = body.readUInt32BE(at + 1);
      const payload = body.subarray(at + 5, at + 5 + len);
      if (flags & 0x02) {
        try {
          const end = JSON.parse(payload.toString()) as { error?: { code?: string } };
          return end.error?.code ?? "ok";
        } catch {
          return "unparsable-end";
        }
      }
      at += 5 + len;
    }
    return `stream-${status}`;
  }
  if (status === 200) return "ok";
  try {
    return (JSON.parse(body.toString()) as { code?: string }).code ?? `http-${status}`;
  } catch {
    return `http-${status}`;
  }
}

/** grpc-status and grpc-message of a gRPC-Web answer: headers, or the trailer frame (flag 0x80). */
function grpcWebStatus(
  header: (name: string) => string | undefined,
  body: Buffer,
): { status?: number; message: string } {
  const h = header("grpc-status");
  if (h !== undefined)
    return { status: Number(h), message: decodeURIComponent(header("grpc-message") ?? "") };
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body[at]!;
    const len = body.readUInt32BE(at + 1);
    if (flags & 0x80) {
      const text = body.subarray(at + 5, at + 5 + len).toString();
      const m = /grpc-status:\s*(\d+)/i.exec(text);
      const msg = /grpc-message:\s*(.*)/i.exec(text);
      return {
        ...(m ? { status: Number(m[1]) } : {}),
        message: decodeURIComponent(msg?.[1]?.trim() ?? ""),
      };
    }
    at += 5 + len;
  }
  return { message: "" };
}

describe.skipIf(!pg || !nats)("fuzz: the gateway in Connect, gRPC and gRPC-Web", () => {
  let f: GatewayFixture;
  let h2: ClientHttp2Session;
  let auth: fc.Arbitrary<Record<string, string>>;
  const tallies: Record<string, Tally> = {};
  let before: { rss: number; heapUsed: number };

  beforeAll(async () => {
    f = await startGatewayFixture({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      limits: { defaultRatePerSecond: 1e6, defaultMaxStreams: 10_000 },
    });
    h2 = await openH2(f.url);
    // Mostly a good key; sometimes none or garbage (UNAUTHENTICATED is a fine answer).
    auth = fc.oneof(
      { weight: 8, arbitrary: fc.constant({ authorization: `Bearer ${f.keys.acmeWriter}` }) },
      { weight: 1, arbitrary: fc.constant({} as Record<string, string>) },
      {
        weight: 1,
        arbitrary: fc
          .string({ maxLength: 40 })
          .map((s) => ({ authorization: `Bearer ${s.replace(/[^\x21-\x7e]/g, "x")}` })),
      },
    );
    // Warm the paths once so the memory baseline is not the cost of first use.
    await fetch(`${f.url}/agentmesh.v1.ExecutorService/ListGoals`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${f.keys.acmeWriter}` },
      body: '{"tenantId":"acme"}',
    });
    collectGarbage();
    before = memoryMiB();
  }, 120_000);

  afterAll(async () => {
    h2?.close();
    await f?.close();
    const lines = Object.entries(tallies).map(
      ([p, t]) =>
        `${p}: ${t.inputs} inputs, codes ${JSON.stringify(Object.fromEntries(t.byCode))}, slowest ${t.slowest?.ms} ms ${t.slowest?.input}`,
    );
    console.log(`fuzz gateway — inputs tried:\n  ${lines.join("\n  ")}`);
  });

  /** Runs `probe` on generated inputs, 8 at a time, until the time budget is spent. */
  async function fuzz<T>(
    name: string,
    input: fc.Arbitrary<T>,
    probe: (x: T, t: Tally) => Promise<void>,
  ): Promise<Tally> {
    const t = tally();
    tallies[name] = t;
    await fuzzFor(name, input, budgetMs, async (x) => {
      const started = Date.now();
      await probe(x, t);
      const took = Date.now() - started;
      if (took > (t.slowest?.ms ?? 0))
        t.slowest = { ms: took, input: JSON.stringify(x).slice(0, 200) };
    });
    return t;
  }

  it("Connect unary and streaming: bad JSON, bad proto, wrong content types, absurd deadlines", {
    timeout: budgetMs * 3 + 60_000,
  }, async () => {
    const input = fc.record({
      path: fc.constantFrom(...unaryPaths, streamPath),
      kind: fc.constantFrom("json", "proto", "stream-json", "stream-proto", "wrong-type"),
      json: jsonBodies(validJson),
      proto: protoBytes(validProto),
      wrongType: wrongContentTypes,
      timeout: fc.option(absurdConnectTimeouts, { freq: 3 }),
      auth,
      lie: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { freq: 4 }),
    });
    const result = await fuzz("connect", input, async (x, t): Promise<void> => {
      let contentType: string;
      let body: string | Uint8Array;
      switch (x.kind) {
        case "json":
          contentType = "application/json";
          body = x.json;
          break;
        case "proto":
          contentType = "application/proto";
          body = x.proto;
          break;
        case "stream-json": {
          const bytes = typeof x.json === "string" ? new TextEncoder().encode(x.json) : x.json;
          contentType = "application/connect+json";
          body = envelope(bytes, 0, x.lie ?? bytes.byteLength);
          break;
        }
        case "stream-proto":
          contentType = "application/connect+proto";
          body = envelope(x.proto, 0, x.lie ?? x.proto.byteLength);
          break;
        default:
          contentType = x.wrongType;
          body = x.json;
      }
      const headers: Record<string, string> = {
        ...x.auth,
        "content-type": contentType,
        "connect-protocol-version": "1",
        // Streams end by deadline at the latest; absurd values are the input under test.
        "connect-timeout-ms": x.timeout ?? "2000",
      };
      let res: Awaited<ReturnType<typeof http1Post>>;
      try {
        res = await http1Post(`${f.url}${x.path}`, headers, body);
      } catch (err) {
        // A server may close the connection on an upload it already refused as too large.
        const size = typeof body === "string" ? body.length : body.byteLength;
        const verdict = size > 1024 * 1024 ? undefined : `no answer (${String(err)})`;
        count(
          t,
          verdict ? "no-answer" : "closed-oversized",
          verdict,
          `${x.path} ${x.kind} ${describeBody(body)}`,
        );
        return;
      }
      const code = connectCode(res.status, res.contentType, res.body);
      count(t, code, judgeConnect(res.status, code), `${x.path} ${x.kind} ${describeBody(body)}`);
    });
    expect(result.bad).toEqual([]);
    expect(result.inputs).toBeGreaterThan(50);
  });

  it("gRPC over h2c: random and truncated frames, bad flags, absurd grpc-timeout", {
    timeout: budgetMs * 3 + 60_000,
  }, async () => {
    const input = fc.record({
      path: fc.constantFrom(...unaryPaths, streamPath),
      payload: protoBytes(validProto),
      flags: fc.constantFrom(0, 0, 0, 1, 0x80, 0xff),
      lie: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { freq: 3 }),
      cut: fc.option(fc.nat({ max: 6 }), { freq: 5 }),
      contentType: fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom("application/grpc", "application/grpc+proto") },
        { weight: 1, arbitrary: wrongContentTypes },
      ),
      timeout: fc.option(absurdGrpcTimeouts, { freq: 3 }),
      encoding: fc.option(fc.constantFrom("gzip", "snappy", "identity", "br"), { freq: 5 }),
      auth,
    });
    const result = await fuzz("grpc", input, async (x, t): Promise<void> => {
      let body = envelope(x.payload, x.flags, x.lie ?? x.payload.byteLength);
      if (x.cut !== null) body = body.slice(0, x.cut); // a frame cut inside its header
      const headers: Record<string, string> = {
        ...x.auth,
        "content-type": x.contentType,
        "grpc-timeout": x.timeout ?? "2S",
      };
      if (x.encoding) headers["grpc-encoding"] = x.encoding;
      const a = await h2Request(h2, x.path, headers, body, 10_000);
      const what = `${x.path} flags=${x.flags} lie=${x.lie} cut=${x.cut} ${x.payload.byteLength}B`;
      // A watch with a valid, long deadline is rightly still streaming.
      if (a.timedOut && a.status === 200 && x.path === streamPath)
        return count(t, "open-stream", undefined, what);
      if (a.timedOut)
        return count(t, "no-answer", `no answer in 10 s (timeout ${x.timeout})`, what);
      count(
        t,
        String(a.grpcStatus ?? `http-${a.status}`),
        judgeGrpc(a.status, a.grpcStatus, {
          flags: x.cut === null || x.cut > 0 ? x.flags : 0,
          message: decodeURIComponent(a.grpcMessage),
        }),
        `${what} ${JSON.stringify(a.grpcMessage)}`,
      );
    });
    expect(result.bad).toEqual([]);
    expect(result.inputs).toBeGreaterThan(50);
  });

  it("gRPC-Web over HTTP/1.1: random and truncated frames, text mode, wrong types", {
    timeout: budgetMs * 3 + 60_000,
  }, async () => {
    const input = fc.record({
      path: fc.constantFrom(...unaryPaths, streamPath),
      payload: protoBytes(validProto),
      flags: fc.constantFrom(0, 0, 0, 1, 0x80),
      lie: fc.option(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { freq: 3 }),
      contentType: fc.oneof(
        {
          weight: 5,
          arbitrary: fc.constantFrom(
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
          ),
        },
        { weight: 1, arbitrary: wrongContentTypes },
      ),
      timeout: fc.option(absurdGrpcTimeouts, { freq: 3 }),
      auth,
    });
    const result = await fuzz("grpc-web", input, async (x, t): Promise<void> => {
      const framed = envelope(x.payload, x.flags, x.lie ?? x.payload.byteLength);
      const body = x.contentType.includes("text") ? Buffer.from(framed).toString("base64") : framed;
      const what = `${x.path} ${x.contentType} flags=${x.flags} lie=${x.lie} ${x.payload.byteLength}B`;
      let res: Awaited<ReturnType<typeof http1Post>>;
      try {
        res = await http1Post(
          `${f.url}${x.path}`,
          {
            ...x.auth,
            "content-type": x.contentType,
            "x-grpc-web": "1",
            "grpc-timeout": x.timeout ?? "2S",
          },
          body,
        );
      } catch (err) {
        return count(t, "no-answer", `no answer (${String(err)})`, what);
      }
      const buf = res.body;
      const { status, message } = grpcWebStatus(res.header, buf);
      count(
        t,
        String(status ?? `http-${res.status}`),
        judgeGrpc(res.status, status, { flags: x.flags, message }),
        `${what} ${JSON.stringify(message)}`,
      );
    });
    expect(result.bad).toEqual([]);
    expect(result.inputs).toBeGreaterThan(50);
  });

  it("compressed bodies: gzip of good and broken messages, truncated gzip, decompression bombs", {
    timeout: budgetMs * 3 + 60_000,
  }, async () => {
    // Bombs: a few KiB on the wire, 16 or 64 MiB once inflated; built once, reused.
    const bombs = [16, 64].map((mib) => gzipSync(Buffer.alloc(mib << 20), { level: 9 }));
    const input = fc.record({
      protocol: fc.constantFrom("connect-proto", "connect-json", "connect-stream", "grpc"),
      proto: protoBytes(validProto),
      json: jsonBodies(validJson),
      payload: fc.constantFrom("gzip", "gzip", "truncated", "bomb", "not-gzip"),
      cut: fc.nat(),
      bomb: fc.constantFrom(...bombs),
      path: fc.constantFrom(...unaryPaths),
    });
    const result = await fuzz("compressed", input, async (x, t): Promise<void> => {
      const raw =
        x.protocol === "connect-json"
          ? typeof x.json === "string"
            ? new TextEncoder().encode(x.json)
            : x.json
          : x.proto;
      let body: Uint8Array;
      switch (x.payload) {
        case "gzip":
          body = gzipSync(raw);
          break;
        case "truncated": {
          const whole = gzipSync(raw);
          body = whole.subarray(0, x.cut % whole.byteLength);
          break;
        }
        case "bomb":
          body = x.bomb;
          break;
        default:
          body = raw; // labelled gzip, but is not
      }
      const auth = { authorization: `Bearer ${f.keys.acmeWriter}` };
      const what = `${x.protocol} ${x.path} ${x.payload} ${body.byteLength}B`;
      if (x.protocol === "grpc") {
        const a = await h2Request(
          h2,
          x.path,
          { ...auth, "content-type": "application/grpc", "grpc-encoding": "gzip" },
          envelope(body, 0x01),
          10_000,
        );
        if (a.timedOut) return count(t, "no-answer", "no answer in 10 s", what);
        return count(
          t,
          String(a.grpcStatus ?? `http-${a.status}`),
          judgeGrpc(a.status, a.grpcStatus) ??
            (x.payload === "bomb" && a.grpcStatus === 0 ? "a bomb was accepted" : undefined),
          `${what} ${JSON.stringify(a.grpcMessage)}`,
        );
      }
      const stream = x.protocol === "connect-stream";
      const headers: Record<string, string> = {
        ...auth,
        "connect-protocol-version": "1",
        "content-type": stream
          ? "application/connect+proto"
          : x.protocol === "connect-json"
            ? "application/json"
            : "application/proto",
        ...(stream ? { "connect-content-encoding": "gzip" } : { "content-encoding": "gzip" }),
      };
      const res = await http1Post(
        `${f.url}${stream ? streamPath : x.path}`,
        headers,
        stream ? envelope(body, 0x01) : body,
      );
      const code = connectCode(res.status, res.contentType, res.body);
      count(
        t,
        code,
        judgeConnect(res.status, code) ??
          (x.payload === "bomb" && code === "ok" ? "a bomb was accepted" : undefined),
        `${what} ${res.body.toString().slice(0, 160)}`,
      );
    });
    expect(result.bad).toEqual([]);
    expect(result.inputs).toBeGreaterThan(50);
  });

  it("is still up, memory is bounded, and a normal call works in every protocol", async () => {
    collectGarbage();
    const after = memoryMiB();
    console.log(
      `fuzz gateway — memory MiB before ${JSON.stringify(before)} after ${JSON.stringify(after)}`,
    );
    expect(after.heapUsed - before.heapUsed).toBeLessThan(128);
    expect(after.rss - before.rss).toBeLessThan(384);

    // Fresh connections: the question is whether the gateway serves, not a client's pool.
    const auth = { authorization: `Bearer ${f.keys.acmeWriter}` };
    const res = await http1Post(
      `${f.url}/agentmesh.v1.ExecutorService/SubmitGoal`,
      { ...auth, "content-type": "application/json" },
      validJson[0]!,
    );
    expect(res.status).toBe(200);
    const goal = (JSON.parse(res.body.toString()) as { goal: { goalId: string } }).goal;
    expect(goal.goalId).toBeTruthy();

    const get = envelope(
      toBinary(
        GetGoalRequestSchema,
        create(GetGoalRequestSchema, { tenantId: "acme", goalId: goal.goalId }),
      ),
    );
    const g = await h2Request(
      h2,
      "/agentmesh.v1.ExecutorService/GetGoal",
      { ...auth, "content-type": "application/grpc" },
      get,
    );
    expect(g.grpcStatus).toBe(0);

    const web = await http1Post(
      `${f.url}/agentmesh.v1.ExecutorService/GetGoal`,
      { ...auth, "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
      get,
    );
    expect(grpcWebStatus(web.header, web.body).status).toBe(0);
  });
});
