import { describe, expect, it } from "vitest";
import { parseReadyLine, restartDelay } from "./dev-agents.js";

describe("dev agent supervision", () => {
  it("backs off 0.5 s doubling to 30 s", () => {
    expect([1, 2, 3, 4, 7, 8, 20].map((n) => restartDelay(n))).toEqual([
      500, 1_000, 2_000, 4_000, 30_000, 30_000, 30_000,
    ]);
  });

  it("reads the agent's ready line, with or without its health endpoint", () => {
    expect(
      parseReadyLine("agent a-1 ready: data.transform (health http://127.0.0.1:4000)"),
    ).toEqual({
      agentId: "a-1",
      capabilities: ["data.transform"],
      health: "http://127.0.0.1:4000",
    });
    expect(parseReadyLine("agent a-2 ready: util.echo, util.sleep")).toEqual({
      agentId: "a-2",
      capabilities: ["util.echo", "util.sleep"],
    });
    expect(parseReadyLine("something else")).toBeUndefined();
  });
});
