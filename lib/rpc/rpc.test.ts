/**
 * The RPC spine over real mTLS sockets on loopback: every rejection case,
 * error mapping, deadlines, streaming, delegation and metrics.
 */
import { readFileSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrincipalSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createSiemExporter } from "../siem/exporter.js";
import { setSiemExporter } from "../siem/siem.js";
import { createMeshMetrics, type MeshMetrics } from "../telemetry/metrics.js";
import { serveMetrics } from "../telemetry/metrics-server.js";
import { type CertWatcher, watchCertificates } from "../tls/cert-watcher.js";
import { issueCertificate } from "../tls/dev-ca.js";
import type { Authorizer } from "./authorizer.js";
import { type CallOptions, createChannel, createClient, type MeshChannel } from "./client.js";
import type { AnyHandler, HandlerContext } from "./handler.js";
import type { Interceptor } from "./interceptor.js";
import { createServer, type MeshServer, type ServerOptions } from "./server.js";
import {
  allowAll,
  allowNames,
  createTestPki,
  echoImpl,
  echoService,
  type TestPki,
} from "./testing.js";

interface EchoClient {
  echo(req: { value: Uint8Array }, o?: CallOptions): Promise<{ value: Uint8Array }>;
  count(req: { value: number }, o?: CallOptions): AsyncIterable<{ value: number }>;
  sum(reqs: AsyncIterable<{ value: number }>, o?: CallOptions): Promise<{ value: number }>;
  chat(
    reqs: AsyncIterable<{ value: Uint8Array }>,
    o?: CallOptions,
  ): AsyncIterable<{ value: Uint8Array }>;
}

let pki: TestPki;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  pki = await createTestPki(["registry", "planner", "executor", "gateway", "agent-rogue"]);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await pki.cleanup();
});

async function start(
  impl: Record<string, AnyHandler> = echoImpl,
  options: Partial<ServerOptions> & { name?: string } = {},
): Promise<MeshServer> {
  const server = createServer({
    certs: await pki.watch(options.name ?? "registry"),
    authorizer: allowAll,
    metrics: createMeshMetrics(),
    ...options,
  });
  server.add(echoService(), impl);
  await server.listen();
  cleanups.push(() => server.shutdown(100));
  return server;
}

async function connect(
  server: MeshServer,
  as = "executor",
  options: { metrics?: MeshMetrics; expect?: string; certs?: CertWatcher } = {},
): Promise<{ echo: EchoClient; channel: MeshChannel }> {
  const channel = createChannel({
    address: server.address,
    certs: options.certs ?? (await pki.watch(as)),
    server: options.expect ?? pki.id("registry"),
    metrics: options.metrics ?? createMeshMetrics(),
  });
  cleanups.push(() => channel.close());
  return { echo: createClient(echoService(), channel) as unknown as EchoClient, channel };
}

const bytes = (s: string) => new TextEncoder().encode(s);

async function* items<T>(list: T[]): AsyncIterable<T> {
  for (const x of list) yield x;
}

/** A raw grpc-js call with hand-made credentials, for what our own client refuses to do. */
function rawUnary(address: string, creds: grpc.ChannelCredentials, body: Buffer): Promise<Buffer> {
  const client = new grpc.Client(address, creds, { "grpc.ssl_target_name_override": "registry" });
  const id = (b: Buffer) => b;
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(
      "/agentmesh.testing.EchoService/Echo",
      id,
      id,
      body,
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (err, res) => {
        client.close();
        if (err) reject(err);
        else resolve(res as Buffer);
      },
    );
  });
}

const file = (name: string, f: string) => readFileSync(join(pki.path(name), f));
const skipHost = { checkServerIdentity: () => undefined };

describe("mTLS RPC spine", () => {
  it("serves all four method kinds and shows the handler the verified peer", async () => {
    let seen: HandlerContext | undefined;
    const server = await start({
      ...echoImpl,
      echo: (req: { value: Uint8Array }, ctx: HandlerContext) => {
        seen = ctx;
        return { value: req.value };
      },
    });
    const { echo } = await connect(server);
    expect((await echo.echo({ value: bytes("hi") })).value).toEqual(bytes("hi"));
    expect(seen?.peer).toEqual({
      spiffeId: "spiffe://agentmesh.local/ns/agentmesh/sa/executor",
      trustDomain: "agentmesh.local",
      namespace: "agentmesh",
      name: "executor",
    });
    expect(seen?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(seen?.principal).toBeUndefined();
    const counted: number[] = [];
    for await (const m of echo.count({ value: 5 })) counted.push(m.value);
    expect(counted).toEqual([0, 1, 2, 3, 4]);
    expect((await echo.sum(items([1, 2, 3, 4].map((value) => ({ value }))))).value).toBe(10);
    const chatted: string[] = [];
    for await (const m of echo.chat(items(["a", "b"].map((s) => ({ value: bytes(s) }))))) {
      chatted.push(new TextDecoder().decode(m.value));
    }
    expect(chatted).toEqual(["a", "b"]);
  });

  it("requires an authorizer", () => {
    expect(() =>
      createServer({ certs: undefined as never, authorizer: undefined as never }),
    ).toThrow(/authorizer/);
  });

  it("rejects a client without a certificate at the handshake", async () => {
    let called = false;
    const server = await start({
      echo: () => {
        called = true;
        return {};
      },
    });
    const creds = grpc.credentials.createSsl(file("registry", "ca.crt"), null, null, skipHost);
    await expect(rawUnary(server.address, creds, Buffer.alloc(0))).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(called).toBe(false);
  });

  it("rejects a client certificate from another CA", async () => {
    const other = await createTestPki(["executor"]);
    cleanups.push(() => other.cleanup());
    // The foreign identity trusts our CA (so only the server's check can fail).
    const dir = join(other.dir, "foreign");
    await mkdir(dir);
    await copyFile(join(other.path("executor"), "tls.crt"), join(dir, "tls.crt"));
    await copyFile(join(other.path("executor"), "tls.key"), join(dir, "tls.key"));
    await copyFile(join(pki.path("registry"), "ca.crt"), join(dir, "ca.crt"));
    const certs = await watchCertificates({ dir, pollIntervalMs: 0 });
    cleanups.push(() => certs.close());
    const server = await start();
    const { echo } = await connect(server, "executor", { certs });
    await expect(echo.echo({ value: bytes("x") }, { timeoutMs: 3000 })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
  });

  it("rejects an expired client certificate", async () => {
    await pki.issue("expired", {
      notBefore: new Date(Date.now() - 3 * 86_400_000),
      ttlMs: 86_400_000,
    });
    const server = await start();
    const { echo } = await connect(server, "expired");
    await expect(echo.echo({ value: bytes("x") }, { timeoutMs: 3000 })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
  });

  it("refuses a server whose SPIFFE ID is not the expected one", async () => {
    const server = await start({}, { name: "planner" });
    const { echo } = await connect(server, "executor", { expect: pki.id("registry") });
    const err = await echo
      .echo({ value: bytes("x") }, { timeoutMs: 3000 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toMatch(/planner/);
  });

  it("denies a peer the authorizer does not know, with the policy's reason", async () => {
    let called = false;
    const metrics = createMeshMetrics();
    const server = await start(
      {
        ...echoImpl,
        echo: () => {
          called = true;
          return {};
        },
      },
      { authorizer: allowNames(["executor"]), metrics },
    );
    const { echo } = await connect(server, "agent-rogue");
    const siem: Record<string, unknown>[] = [];
    const exporter = createSiemExporter({
      sink: { name: "memory", send: async (e) => void siem.push(...e), close: async () => {} },
    });
    setSiemExporter(exporter);
    const err = await echo.echo({ value: bytes("x") }).catch((e: unknown) => e);
    await exporter.flush();
    setSiemExporter(undefined);
    expect(siem).toEqual([
      expect.objectContaining({
        class_uid: 6003,
        status_id: 2,
        actor: {
          user: expect.objectContaining({
            name: "spiffe://agentmesh.local/ns/agentmesh/sa/agent-rogue",
          }),
        },
      }),
    ]);
    expect(err).toBeInstanceOf(MeshError);
    expect(err).toMatchObject({ code: Code.PermissionDenied });
    expect((err as Error).message).toContain(
      "spiffe://agentmesh.local/ns/agentmesh/sa/agent-rogue is not allowed",
    );
    expect(called).toBe(false);
    expect((await metrics.rpcDenials.get()).values[0]?.value).toBe(1);
    // Streams are authorized before the handler runs, too.
    await expect(async () => {
      for await (const _ of echo.count({ value: 3 })) {
        // unreachable
      }
    }).rejects.toMatchObject({ code: Code.PermissionDenied });
  });

  it("fails closed when the authorizer throws or answers nonsense", async () => {
    const throwing: Authorizer = () => {
      throw new Error("policy not loaded");
    };
    const s1 = await start(echoImpl, { authorizer: throwing });
    await expect((await connect(s1)).echo.echo({ value: bytes("x") })).rejects.toMatchObject({
      code: Code.PermissionDenied,
      message: "authorization failed",
    });
    const s2 = await start(echoImpl, { authorizer: (() => undefined) as unknown as Authorizer });
    await expect((await connect(s2)).echo.echo({ value: bytes("x") })).rejects.toMatchObject({
      code: Code.PermissionDenied,
    });
    const s3 = await start(echoImpl, {
      authorizer: async () => ({ allow: false, reason: "nope", principalTrusted: false }),
    });
    await expect((await connect(s3)).echo.echo({ value: bytes("x") })).rejects.toMatchObject({
      code: Code.PermissionDenied,
      message: "nope",
    });
  });

  it("exposes the delegated principal only when the decision trusts it", async () => {
    const principals: unknown[] = [];
    const claimed: unknown[] = [];
    const authorizer: Authorizer = (req) => {
      claimed.push(req.principal?.subject);
      return allowNames(["executor", "gateway"], ["gateway"])(req);
    };
    const server = await start(
      {
        echo: (_: unknown, ctx: HandlerContext) => {
          principals.push(ctx.principal?.subject);
          return {};
        },
      },
      { authorizer },
    );
    const principal = create(PrincipalSchema, {
      tenantId: "acme",
      subject: "alice",
      roles: ["user"],
    });
    await (await connect(server, "gateway")).echo.echo({ value: bytes("") }, { principal });
    await (await connect(server, "executor")).echo.echo({ value: bytes("") }, { principal });
    expect(claimed).toEqual(["alice", "alice"]);
    expect(principals).toEqual(["alice", undefined]);
  });

  it("answers RESOURCE_EXHAUSTED to an oversized message", async () => {
    const server = await start(echoImpl, { maxMessageBytes: 1024 });
    const { echo } = await connect(server);
    await expect(echo.echo({ value: new Uint8Array(4096) })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect((await echo.echo({ value: new Uint8Array(100) })).value.length).toBe(100);
  });

  it("answers INVALID_ARGUMENT to malformed protobuf", async () => {
    const server = await start();
    const creds = grpc.credentials.createSsl(
      file("executor", "ca.crt"),
      file("executor", "tls.key"),
      file("executor", "tls.crt"),
      skipHost,
    );
    // Field 1, length-delimited, claiming 100 bytes that are not there.
    const err = await rawUnary(server.address, creds, Buffer.from([0x0a, 100, 1, 2])).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    expect(
      (await rawUnary(server.address, creds, Buffer.from([0x0a, 1, 65]))).toString("latin1"),
    ).toBe("\n\x01A");
  });

  it("maps a thrown error to INTERNAL with a generic message, and keeps MeshErrors intact", async () => {
    const server = await start({
      echo: (req: { value: Uint8Array }) => {
        if (req.value.length === 0) throw new Error("db password=hunter2 at /srv/secret");
        throw new MeshError(Code.FailedPrecondition, "agent is draining", {
          details: { agentId: "a1" },
          retryable: true,
        });
      },
      // biome-ignore lint/correctness/useYield: the stream fails before its first message.
      async *count() {
        throw new TypeError("boom");
      },
    });
    const { echo } = await connect(server);
    const internal = await echo.echo({ value: new Uint8Array() }).catch((e: unknown) => e);
    expect(internal).toMatchObject({ code: Code.Internal, message: "internal error" });
    expect(JSON.stringify(internal)).not.toContain("hunter2");
    const domain = await echo.echo({ value: bytes("x") }).catch((e: unknown) => e);
    expect(domain).toMatchObject({
      code: Code.FailedPrecondition,
      message: "agent is draining",
      details: { agentId: "a1" },
      retryable: true,
    });
    await expect(async () => {
      for await (const _ of echo.count({ value: 1 })) {
        // unreachable
      }
    }).rejects.toMatchObject({ code: Code.Internal, message: "internal error" });
  });

  it("answers UNIMPLEMENTED for a method without a handler", async () => {
    const server = await start({ echo: echoImpl.echo as AnyHandler });
    const { echo } = await connect(server);
    await expect(echo.sum(items([{ value: 1 }]))).rejects.toMatchObject({
      code: Code.Unimplemented,
    });
  });

  it("propagates deadline, cancellation and trace to the calls a handler makes", async () => {
    let inner: { deadline?: number; traceId?: string; aborted?: unknown } = {};
    let outer: { deadline?: number; traceId?: string } = {};
    const planner = await start(
      {
        echo: async (_: unknown, ctx: HandlerContext) => {
          inner = { deadline: ctx.deadline, traceId: ctx.traceId };
          if (!ctx.signal.aborted)
            await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          inner.aborted = (ctx.signal.reason as MeshError).code;
          return {};
        },
      },
      { name: "planner" },
    );
    const { echo: toPlanner } = await connect(planner, "registry", { expect: pki.id("planner") });
    const registry = await start({
      echo: async (req: { value: Uint8Array }, ctx: HandlerContext) => {
        outer = { deadline: ctx.deadline, traceId: ctx.traceId };
        // No timeout here: the incoming call's deadline applies.
        return toPlanner.echo({ value: req.value });
      },
    });
    const { echo } = await connect(registry);
    // Connect both hops first so handshakes (slow on a loaded machine) are not timed.
    await echo.echo({ value: bytes("warm") }, { timeoutMs: 100 }).catch(() => {});
    const t0 = Date.now();
    const err = await echo
      .echo({ value: bytes("x") }, { timeoutMs: 1000 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.DeadlineExceeded });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(outer.deadline).toBeGreaterThan(t0 + 800);
    // Same deadline one hop further (give or take transport and event-loop delay).
    expect(Math.abs((inner.deadline ?? 0) - (outer.deadline ?? 0))).toBeLessThan(200);
    expect(inner.traceId).toBe(outer.traceId);
    // Stopped by its own deadline (the same instant) or by the caller's cancellation,
    // whichever lands first: both are right, and a loaded machine picks either.
    await expect.poll(() => inner.aborted).toBeDefined();
    expect([Code.DeadlineExceeded, Code.Canceled]).toContain(inner.aborted);
  });

  it("cancels the server handler when the client aborts", async () => {
    let aborted = false;
    const server = await start({
      echo: async (_: unknown, ctx: HandlerContext) => {
        if (!ctx.signal.aborted)
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        aborted = true;
        return {};
      },
    });
    const { echo } = await connect(server);
    const ac = new AbortController();
    const p = echo.echo({ value: bytes("x") }, { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await expect(p).rejects.toMatchObject({ code: Code.Canceled });
    await expect.poll(() => aborted).toBe(true);
  });

  it("honours backpressure on a server stream and stops the handler when the client leaves", async () => {
    let produced = 0;
    let finished = false;
    let signalAborted = false;
    const big = new Uint8Array(16 * 1024);
    const server = await start({
      async *chat(_: AsyncIterable<unknown>, ctx: HandlerContext) {
        try {
          while (true) {
            produced++;
            yield { value: big };
          }
        } finally {
          finished = true;
          signalAborted = ctx.signal.aborted;
        }
      },
    });
    const { echo } = await connect(server);
    let consumed = 0;
    for await (const _ of echo.chat(items([{ value: bytes("go") }]))) {
      consumed++;
      if (consumed === 10) {
        // A slow consumer: an unbounded producer would run far ahead meanwhile.
        await new Promise((r) => setTimeout(r, 500));
        expect(produced - consumed).toBeLessThan(1000);
      }
      if (consumed === 20) break;
    }
    await expect.poll(() => finished, { timeout: 3000 }).toBe(true);
    expect(signalAborted).toBe(true);
    expect(produced - consumed).toBeLessThan(1000);
  });

  it("serves health (Check, List, Watch) with settable status", async () => {
    const server = await start();
    const channel = createChannel({
      address: server.address,
      certs: await pki.watch("executor"),
      server: pki.id("registry"),
      metrics: createMeshMetrics(),
    });
    cleanups.push(() => channel.close());
    const health = createClient(Health, channel);
    expect((await health.check({ service: "" })).status).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
    expect((await health.check({ service: "agentmesh.testing.EchoService" })).status).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
    await expect(health.check({ service: "nope" })).rejects.toMatchObject({ code: Code.NotFound });
    expect(Object.keys((await health.list({})).statuses)).toContain("grpc.health.v1.Health");
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const ac = new AbortController();
    for await (const r of health.watch({ service: "" }, { signal: ac.signal })) {
      seen.push(r.status);
      if (seen.length === 1) server.health.set("", "NOT_SERVING");
      if (seen.length === 2) break;
    }
    expect(seen).toEqual([
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    ]);
  });

  it("serves reflection built from the descriptors", async () => {
    const server = await start();
    const channel = createChannel({
      address: server.address,
      certs: await pki.watch("executor"),
      server: pki.id("registry"),
      metrics: createMeshMetrics(),
    });
    cleanups.push(() => channel.close());
    const reflection = createClient(ServerReflection, channel);
    const answers = [];
    for await (const r of reflection.serverReflectionInfo(
      items([
        { messageRequest: { case: "listServices" as const, value: "" } },
        {
          messageRequest: {
            case: "fileContainingSymbol" as const,
            value: "agentmesh.testing.EchoService",
          },
        },
        { messageRequest: { case: "fileContainingSymbol" as const, value: "no.such.Symbol" } },
      ]),
    )) {
      answers.push(r.messageResponse);
    }
    expect(answers[0]?.case).toBe("listServicesResponse");
    expect(
      answers[0]?.case === "listServicesResponse" && answers[0].value.service.map((s) => s.name),
    ).toEqual([
      "agentmesh.testing.EchoService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
    // The file and its dependency (wrappers.proto).
    expect(
      answers[1]?.case === "fileDescriptorResponse" && answers[1].value.fileDescriptorProto.length,
    ).toBe(2);
    expect(answers[2]).toMatchObject({
      case: "errorResponse",
      value: { errorCode: Code.NotFound },
    });
  });

  it("counts calls per method and serves them on /metrics", async () => {
    const metrics = createMeshMetrics();
    const server = await start(echoImpl, { metrics });
    const { echo } = await connect(server, "executor", { metrics });
    await echo.echo({ value: bytes("x") });
    await echo.echo({ value: bytes("y") });
    await expect(
      (async () => {
        for await (const _ of echo.count({ value: 2 })) {
          // drain
        }
      })(),
    ).resolves.toBeUndefined();
    const http = await serveMetrics({ registry: metrics.registry, port: 0 });
    cleanups.push(() => http.close());
    const text = await (await fetch(http.url)).text();
    expect(text).toContain(
      'agentmesh_rpc_requests_total{side="server",service="agentmesh.testing.EchoService",method="Echo",code="OK"} 2',
    );
    expect(text).toContain(
      'agentmesh_rpc_requests_total{side="client",service="agentmesh.testing.EchoService",method="Count",code="OK"} 1',
    );
    expect(text).toMatch(
      /agentmesh_rpc_duration_seconds_count\{side="server",service="agentmesh.testing.EchoService",method="Echo"\} 2/,
    );
    expect(text).toContain("agentmesh_cert_expiry_timestamp_seconds");
  });

  it("a client-sent principal header that is not protobuf is INVALID_ARGUMENT", async () => {
    const server = await start();
    const { echo } = await connect(server);
    const garbage = Buffer.from([0xff, 0xff, 0xff]);
    await expect(
      echo.echo({ value: bytes("x") }, { metadata: { "x-agentmesh-principal-bin": garbage } }),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
    const ok = Buffer.from(toBinary(PrincipalSchema, create(PrincipalSchema, { subject: "bob" })));
    await expect(
      echo.echo({ value: bytes("x") }, { metadata: { "x-agentmesh-principal-bin": ok } }),
    ).resolves.toBeDefined();
  });

  it("client failures are MeshErrors: bad address, closed channel, failing request stream", async () => {
    const certs = await pki.watch("executor");
    expect(() => createChannel({ address: "", certs, server: pki.id("registry") })).toThrow(
      expect.objectContaining({ code: Code.InvalidArgument }),
    );
    const server = await start();
    const { echo, channel } = await connect(server);
    // biome-ignore lint/correctness/useYield: the request stream fails before its first message.
    async function* failing(): AsyncIterable<{ value: number }> {
      throw new MeshError(Code.FailedPrecondition, "caller gave up");
    }
    await expect(echo.sum(failing())).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      message: "caller gave up",
    });
    channel.close();
    await expect(echo.echo({ value: bytes("x") })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
  });

  it("counts a stream the client abandons as CANCELLED on the server", async () => {
    const metrics = createMeshMetrics();
    const server = await start(echoImpl, { metrics });
    const { echo } = await connect(server);
    for await (const m of echo.count({ value: 1_000_000 })) {
      if (m.value === 3) break;
    }
    await expect
      .poll(
        async () =>
          (await metrics.rpcRequests.get()).values.find((v) => v.labels.method === "Count")?.labels
            .code,
      )
      .toBe("CANCELED");
  });

  it("runs user interceptors inside the built-in ones with typed values", async () => {
    const order: string[] = [];
    const interceptor: Interceptor = (next) => async (call) => {
      order.push(`server:${call.method.name}`);
      return next(call);
    };
    const server = await start(echoImpl, { interceptors: [interceptor] });
    const { echo } = await connect(server);
    await echo.echo({ value: bytes("x") });
    expect(order).toEqual(["server:Echo"]);
    void issueCertificate;
  });
});
