import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { waitFor } from "../lib/bus/job-bus.contract.js";
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

  it("ends an evaluation that kills its sandbox process as a terminal failure, and recovers", async () => {
    // A long time limit: filling the heap can take more than the default second on a busy machine.
    const err = await transform(
      '$length($pad("", 200000000))',
      null,
      {},
      { timeLimitMs: 20_000 },
    ).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "RESOURCE_EXHAUSTED", retryable: false });
    expect(err).toMatchObject({ message: expect.stringMatching(/out of memory/) });
    expect(await transform("$sum(x)", { x: [1, 2] })).toBe(3);
  });

  it("kills a backtracking regex at the time limit; this process's event loop stays free", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const start = Date.now();
    const err = await transform(
      "$match(s, /(a+)+$/)",
      { s: `${"a".repeat(40)}!` },
      {},
      { timeLimitMs: 300 },
    ).catch((e: unknown) => e);
    clearInterval(timer);
    expect(err).toMatchObject({ code: "DEADLINE_EXCEEDED", retryable: false });
    expect(Date.now() - start).toBeLessThan(3_000);
    expect(ticks).toBeGreaterThan(5);
  });

  it("runs evaluations in parallel processes and cancels on the step's signal", async () => {
    const agent = createDataAgent({ timeLimitMs: 5_000 });
    const handler = agent.skills["data.transform"]!.handler;
    const controller = new AbortController();
    const slow = Promise.resolve(
      handler(
        { expression: "$match(s, /(a+)+$/)", data: { s: `${"a".repeat(40)}!` } },
        testSkillContext({ signal: controller.signal }),
      ),
    ).catch((e: unknown) => e);
    // The stuck evaluation does not hold up the next one.
    expect(await handler({ expression: "1 + 1" }, testSkillContext())).toEqual({ result: 2 });
    controller.abort();
    expect(await slow).toMatchObject({ code: "CANCELLED", retryable: false });
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

  it.skipIf(!existsSync("/usr/bin/setpriv"))(
    "a sandbox process stuck in a regex dies with its parent",
    { timeout: 30_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "sandbox-orphan-"));
      const script = join(dir, "host.mjs");
      writeFileSync(
        script,
        `const { JsonataSandbox } = await import(process.argv[2]);
new JsonataSandbox({ size: 1 }).evaluate({ expression: "$match(s, /(a+)+$/)", data: { s: "${"a".repeat(60)}!" },
  bindings: {}, timeLimitMs: 600000, maxDepth: 500, maxSequence: 1000, maxBytes: 1000 });`,
      );
      const host = spawn(
        process.execPath,
        ["--import", "tsx", script, resolve("agents/jsonata-sandbox.ts")],
        {
          stdio: "ignore",
        },
      );
      const children = () => {
        try {
          return readFileSync(`/proc/${host.pid}/task/${host.pid}/children`, "utf8").trim();
        } catch {
          return "";
        }
      };
      await waitFor(() => children() !== "", 20_000, "the sandbox process");
      const sandbox = Number(children().split(" ")[0]);
      host.kill("SIGKILL");
      // Dead: gone, or a zombie for the container's init to reap.
      const state = () => {
        try {
          const stat = readFileSync(`/proc/${sandbox}/stat`, "utf8");
          return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
        } catch {
          return "gone";
        }
      };
      await waitFor(
        () => state() === "gone" || state() === "Z",
        5_000,
        "the orphaned sandbox to die",
      );
      rmSync(dir, { recursive: true, force: true });
    },
  );
});
