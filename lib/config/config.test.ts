import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

describe("loadConfig", () => {
  it("runs on embedded defaults with nothing set", () => {
    const config = loadConfig({});
    expect(config.trustDomain).toBe("agentmesh.local");
    expect(config.natsUrl).toBe("nats://127.0.0.1:4222");
    expect(config.natsExplicit).toBe(false);
    expect(config.certDir.endsWith(".agentmesh/certs")).toBe(true);
    expect(config.host).toBe("127.0.0.1");
  });

  it("reads overrides and rejects bad ports", () => {
    // DATABASE_URL is a secret: lib/secrets reads it, not the config.
    const config = loadConfig({ AGENTMESH_EXECUTOR_PORT: "0" });
    expect(config.ports.executor).toBe(0);
    expect(() => loadConfig({ AGENTMESH_GATEWAY_PORT: "http" })).toThrow(
      /AGENTMESH_GATEWAY_PORT="http": expected a port/,
    );
  });
});
