/**
 * OTLP span export end to end: a local HTTP receiver on loopback, a real mTLS
 * call through lib/rpc, a flush through `shutdown()`.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createChannel, createClient } from "../rpc/client.js";
import { createServer } from "../rpc/server.js";
import { allowAll, createTestPki, echoImpl, echoService, type TestPki } from "../rpc/testing.js";
import { createMeshMetrics } from "./metrics.js";
import { sdkRegistered } from "./trace-context.js";
import { otlpTracesUrl, startTracing } from "./tracing.js";

interface OtlpSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
}
interface OtlpBody {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: { spans: OtlpSpan[] }[];
  }[];
}

let pki: TestPki;
let receiver: Server;
let endpoint: string;
const bodies: { path: string; contentType: string | undefined; body: OtlpBody }[] = [];

beforeAll(async () => {
  pki = await createTestPki(["registry", "executor"]);
  receiver = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      bodies.push({
        path: req.url,
        contentType: req.headers["content-type"],
        body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as OtlpBody,
      });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => receiver.close(resolve));
  await pki.cleanup();
});

describe("startTracing", () => {
  it("registers nothing when no OTLP endpoint is set", async () => {
    expect(await startTracing({ serviceName: "agentmesh-test", env: {} })).toBeUndefined();
    expect(
      await startTracing({
        serviceName: "agentmesh-test",
        env: { OTEL_EXPORTER_OTLP_ENDPOINT: " " },
      }),
    ).toBeUndefined();
    expect(sdkRegistered()).toBe(false);
  });

  it("derives the traces URL from either variable", () => {
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/" })).toBe(
      "http://c:4318/v1/traces",
    );
    expect(
      otlpTracesUrl({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t:4318/custom",
      }),
    ).toBe("http://t:4318/custom");
  });

  it("exports client and server spans of a real mTLS call over OTLP/HTTP JSON", async () => {
    const tracing = await startTracing({
      serviceName: "agentmesh-test",
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" },
    });
    expect(tracing).toBeDefined();
    expect(sdkRegistered()).toBe(true);
    const server = createServer({
      certs: await pki.watch("registry"),
      authorizer: allowAll,
      metrics: createMeshMetrics(),
    });
    server.add(echoService(), echoImpl);
    await server.listen();
    const channel = createChannel({
      address: server.address,
      certs: await pki.watch("executor"),
      server: pki.id("registry"),
      metrics: createMeshMetrics(),
    });
    try {
      const client = createClient(echoService(), channel) as unknown as {
        echo(req: { value: Uint8Array }): Promise<{ value: Uint8Array }>;
      };
      const res = await client.echo({ value: new TextEncoder().encode("hi") });
      expect(new TextDecoder().decode(res.value)).toBe("hi");
    } finally {
      channel.close();
      await server.shutdown(100);
      await tracing?.shutdown(); // flushes the batch
    }
    expect(sdkRegistered()).toBe(false);

    expect(bodies.length).toBeGreaterThan(0);
    expect(bodies[0]?.contentType).toMatch(/application\/json/);
    const exported = bodies.flatMap(({ body }) =>
      body.resourceSpans.flatMap((rs) => {
        const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value
          .stringValue;
        return rs.scopeSpans.flatMap((ss) => ss.spans.map((span) => ({ ...span, service })));
      }),
    );
    const method = "/agentmesh.testing.EchoService/Echo";
    const serverSpan = exported.find((s) => s.name === method && s.kind === 2); // SERVER
    const clientSpan = exported.find((s) => s.name === method && s.kind === 3); // CLIENT
    expect(serverSpan?.service).toBe("agentmesh-test");
    expect(clientSpan?.service).toBe("agentmesh-test");
    expect(serverSpan?.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(serverSpan?.traceId).toBe(clientSpan?.traceId);
    expect(serverSpan?.parentSpanId).toBe(clientSpan?.spanId);
  });
});
