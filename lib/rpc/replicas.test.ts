/**
 * Several replicas behind one address, over real mTLS sockets: a list of
 * addresses and a DNS name with several records are both spread round robin,
 * and when one replica is killed the calls that follow keep succeeding.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createMeshMetrics } from "../telemetry/metrics.js";
import { type CallOptions, createChannel, createClient } from "./client.js";
import type { AnyHandler } from "./handler.js";
import { createServer, type MeshServer } from "./server.js";
import { grpcTarget } from "./target.js";
import { allowAll, createTestPki, echoService, type TestPki } from "./testing.js";

interface EchoClient {
  echo(req: { value: Uint8Array }, o?: CallOptions): Promise<{ value: Uint8Array }>;
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("replicas behind one address", () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki(["executor", "cli"]);
  });
  afterAll(() => pki?.cleanup());

  /** An executor replica answering its own name. */
  async function replica(name: string): Promise<MeshServer> {
    const server = createServer({
      certs: await pki.watch("executor"),
      authorizer: allowAll,
      metrics: createMeshMetrics(),
    });
    const impl: Record<string, AnyHandler> = {
      echo: () => ({ value: new TextEncoder().encode(name) }),
    };
    server.add(echoService(), impl);
    await server.listen();
    return server;
  }

  async function client(address: string) {
    const channel = createChannel({
      address,
      certs: await pki.watch("cli"),
      server: pki.id("executor"),
      metrics: createMeshMetrics(),
    });
    return { channel, echo: createClient(echoService(), channel) as unknown as EchoClient };
  }

  const answers = async (echo: EchoClient, n: number) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      out.push(text((await echo.echo({ value: new Uint8Array() }, { timeoutMs: 5_000 })).value));
    }
    return out;
  };

  for (const form of ["list", "dns"] as const) {
    it(`${form}: spreads calls over both replicas and fails over when one is killed`, async () => {
      const a = await replica("a");
      const b = await replica("b");
      const portOf = (s: MeshServer) => s.address.split(":").pop();
      // The DNS form through grpc-js's resolver; this host's "localhost" has one record,
      // so it shows the form dials (with round robin), not the spreading.
      const address =
        form === "list" ? `${a.address},${b.address}` : `dns:///localhost:${portOf(a)}`;
      const { channel, echo } = await client(address);
      try {
        if (form === "list") {
          const seen = await answers(echo, 10);
          expect(new Set(seen)).toEqual(new Set(["a", "b"]));
          await a.shutdown(0);
          // Every call after the kill succeeds, on the replica left.
          expect(new Set(await answers(echo, 20))).toEqual(new Set(["b"]));
        } else {
          expect(await answers(echo, 3)).toEqual(["a", "a", "a"]);
        }
      } finally {
        channel.close();
        await a.shutdown(0);
        await b.shutdown(0);
      }
    });
  }

  it("names the address forms in the error for a list it cannot dial", () => {
    expect(grpcTarget("10.0.0.5:7103, 10.0.0.6:7103")).toBe("ipv4:10.0.0.5:7103,10.0.0.6:7103");
    expect(grpcTarget("[::1]:1,[::1]:2")).toBe("ipv6:[::1]:1,[::1]:2");
    expect(grpcTarget("dns:///executor.agentmesh:7103")).toBe("dns:///executor.agentmesh:7103");
    expect(grpcTarget("executor:7103")).toBe("executor:7103");
    const err = (() => {
      try {
        grpcTarget("executor-0:7103,executor-1:7103");
      } catch (e) {
        return MeshError.from(e);
      }
    })();
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.message).toContain("dns:///");
  });
});
