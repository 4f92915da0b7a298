import { describe, expect, it } from "vitest";
import { Code, codeName } from "../errors/mesh-error.js";
import { echoService } from "../rpc/testing.js";
import { createMeshMetrics } from "./metrics.js";

const echo = echoService();
const methodOf = (name: string) => echo.methods.find((m) => m.localName === name)!;

// Calls as (side, method, code, seconds): every bucket, errors, both sides, two methods.
const calls: ["server" | "client", "echo" | "count", Code, number][] = [];
for (let i = 0; i < 200; i++) {
  calls.push([
    i % 3 === 0 ? "client" : "server",
    i % 5 === 0 ? "count" : "echo",
    i % 7 === 0 ? Code.Unavailable : i % 11 === 0 ? Code.InvalidArgument : Code.Ok,
    // 8 µs to 32 s: below the first bucket, in each, and past the last; powers of two,
    // so sums are exact whatever the order of addition.
    2 ** (-17 + (i % 23)),
  ]);
}

/** The same calls fed to prom-client one by one, as the interceptors did before the tallies. */
async function direct(upTo: number): Promise<string> {
  const m = createMeshMetrics();
  for (const [side, name, code, seconds] of calls.slice(0, upTo)) {
    const method = methodOf(name);
    const labels = { side, service: echo.typeName, method: method.name };
    const withCode = { ...labels, code: codeName(code) };
    m.rpcRequests.inc(withCode);
    if (code !== Code.Ok) m.rpcErrors.inc(withCode);
    m.rpcDuration.observe(labels, seconds);
  }
  return rpcLines(await m.registry.metrics());
}

/** The RPC series, sorted (the order of label sets may differ; their values may not). */
function rpcLines(text: string): string {
  return text
    .split("\n")
    .filter((l) => l.startsWith("agentmesh_rpc_"))
    .sort()
    .join("\n");
}

describe("call tallies", () => {
  it("export what prom-client fed call by call exports, across reads", async () => {
    const m = createMeshMetrics();
    // Read twice midway: counts flushed once must not be added again.
    for (const [i, [side, name, code, seconds]] of calls.entries()) {
      m.calls.of(side, methodOf(name)).record(code, seconds);
      if (i === 70 || i === 71)
        expect(rpcLines(await m.registry.metrics())).toBe(await direct(i + 1));
    }
    expect(rpcLines(await m.registry.metrics())).toBe(await direct(calls.length));
    expect(rpcLines(await m.registry.metrics())).toBe(await direct(calls.length));
    expect((await m.rpcErrors.get()).values.length).toBeGreaterThan(0);
  });

  it("start again from zero after the registry is reset", async () => {
    const m = createMeshMetrics();
    const tally = m.calls.of("server", methodOf("echo"));
    tally.record(Code.Ok, 0.001);
    await m.registry.metrics();
    m.registry.resetMetrics();
    tally.record(Code.Ok, 0.002);
    const text = await m.registry.metrics();
    expect(text).toContain(
      'agentmesh_rpc_duration_seconds_count{side="server",service="agentmesh.testing.EchoService",method="Echo"} 1',
    );
    expect(text).toContain(
      'agentmesh_rpc_requests_total{side="server",service="agentmesh.testing.EchoService",method="Echo",code="OK"} 1',
    );
  });

  it("count two descriptors of one method (the gateway's opaque forwarder) as one, after a direct observe", async () => {
    const m = createMeshMetrics();
    const method = methodOf("echo");
    const labels = { side: "client", service: echo.typeName, method: method.name };
    m.rpcDuration.observe(labels, 0.001);
    m.calls.of("client", method).record(Code.Ok, 0.001);
    await m.registry.metrics();
    m.calls.of("client", { ...method }).record(Code.Ok, 0.001);
    m.calls.of("client", method).record(Code.Ok, 0.001);
    const text = await m.registry.metrics();
    expect(text).toContain(
      'agentmesh_rpc_duration_seconds_count{side="client",service="agentmesh.testing.EchoService",method="Echo"} 4',
    );
    expect(text).toContain(
      'agentmesh_rpc_requests_total{side="client",service="agentmesh.testing.EchoService",method="Echo",code="OK"} 3',
    );
  });
});
