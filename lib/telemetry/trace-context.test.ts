import { describe, expect, it } from "vitest";
import {
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseTraceparent,
  sdkRegistered,
  startRpcSpan,
} from "./trace-context.js";

describe("W3C trace context", () => {
  it("parses and formats traceparent", () => {
    const header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const sc = parseTraceparent(header);
    expect(sc).toMatchObject({
      traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
      spanId: "00f067aa0ba902b7",
      traceFlags: 1,
    });
    expect(formatTraceparent(sc!)).toBe(header);
    // Future versions may append fields.
    expect(parseTraceparent(`01-${header.slice(3)}-extra`)?.traceId).toBe(sc?.traceId);
  });

  it("ignores malformed or invalid headers (a new trace starts)", () => {
    for (const bad of [
      undefined,
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
    ]) {
      expect(parseTraceparent(bad), String(bad)).toBeUndefined();
    }
  });

  it("mints ids and child spans in the parent's trace without an SDK", () => {
    expect(sdkRegistered()).toBe(false);
    expect(newTraceId()).toMatch(/^[0-9a-f]{32}$/);
    expect(newSpanId()).toMatch(/^[0-9a-f]{16}$/);
    const ids = new Set(Array.from({ length: 2000 }, () => newSpanId()));
    expect(ids.size).toBe(2000);
    const parent = parseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    const child = startRpcSpan("/x.Y/Z", "server", parent);
    expect(child.spanContext.traceId).toBe(parent?.traceId);
    expect(child.spanContext.spanId).not.toBe(parent?.spanId);
    expect(child.spanContext.traceFlags).toBe(1);
    const root = startRpcSpan("/x.Y/Z", "client", undefined);
    expect(root.spanContext.traceId).toMatch(/^[0-9a-f]{32}$/);
  });
});
