import { describe, expect, it } from "vitest";
import { isAgentError } from "../sdk/agent/agent-error.js";
import { testSkillContext } from "../sdk/agent/test-context.js";
import { createDataAgent, transform } from "./data.js";

describe("data agent", () => {
  it("transforms JSON with JSONata and bindings", async () => {
    const data = {
      items: [
        { price: 2, qty: 3 },
        { price: 5, qty: 1 },
      ],
    };
    expect(await transform("$sum(items.(price * qty))", data)).toBe(11);
    expect(await transform("items[price > $min].price", data, { min: 3 })).toBe(5);
  });

  it("fails bad expressions terminally with the position", async () => {
    const err = await transform("items[", {}).catch((e: unknown) => e);
    expect(isAgentError(err) && !err.retryable && err.code === "INVALID_ARGUMENT").toBe(true);
  });

  it("stops runaway expressions within the time limit", async () => {
    const start = Date.now();
    const err = await transform(
      "($f := function($n){ $f($n + 1) }; $f(0))",
      {},
      {},
      {
        timeLimitMs: 200,
      },
    ).catch((e: unknown) => e);
    expect(isAgentError(err) && !err.retryable).toBe(true);
    expect(Date.now() - start).toBeLessThan(2_000);
  });

  it("refuses inputs and results over the size cap", async () => {
    const agent = createDataAgent({ maxBytes: 100 });
    const handler = agent.skills["data.transform"]!.handler;
    const big = { s: "x".repeat(200) };
    const e1 = await Promise.resolve(
      handler({ expression: "s", data: big }, testSkillContext()),
    ).catch((e: unknown) => e);
    expect(isAgentError(e1) && e1.code === "RESOURCE_EXHAUSTED").toBe(true);
    const e2 = await transform("$pad('', 500, 'y')", {}, {}, { maxBytes: 100 }).catch(
      (e: unknown) => e,
    );
    expect(isAgentError(e2) && e2.code === "RESOURCE_EXHAUSTED").toBe(true);
  });
});
