import { once } from "node:events";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { ephemeralRangeStart, freePort } from "./free-port.js";

describe("freePort", () => {
  it("gives distinct bindable ports below the ephemeral range outgoing connections use", async () => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(new Set(ports).size).toBeGreaterThan(15);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralRangeStart());
    }
    const srv = createServer().listen(ports[0], "127.0.0.1");
    await once(srv, "listening");
    srv.close();
  });
});
