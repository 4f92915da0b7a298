import { describe, expect, it } from "vitest";
import { needNats, needPostgres, runId } from "./infra.js";

describe("test infrastructure", () => {
  it("finds PostgreSQL and NATS (or, outside CI, says loudly that it skips)", async () => {
    const [pg, nats] = await Promise.all([needPostgres(), needNats()]);
    if (process.env.CI === "true") {
      expect(pg?.url).toMatch(/^postgres/);
      expect(nats?.url).toMatch(/^nats/);
    }
  });

  it("makes distinct run ids", () => {
    const ids = new Set(Array.from({ length: 100 }, () => runId()));
    expect(ids.size).toBe(100);
    expect(runId("s")).toMatch(/^s[0-9a-f]{10}$/);
  });
});
