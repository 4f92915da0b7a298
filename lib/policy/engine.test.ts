/**
 * Hot reload with the real compiled policy and real files: a loop of
 * decisions keeps running while the bundle changes under it.
 */
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPolicyAuthorizer } from "./authorizer.js";
import { openPolicyEngine, type PolicyEngine, type PolicyEvent } from "./engine.js";
import {
  committedDataPath,
  committedWasmPath,
  meshMethods,
  meshPeer,
  sampleRequest,
} from "./testing.js";

const planGoal = meshMethods.find((m) => m.name === "PlanGoal")!;
const findAgents = meshMethods.find((m) => m.name === "FindAgents")!;
const executor = meshPeer("executor");

let dir: string;
let engine: PolicyEngine | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "agentmesh-policy-test-"));
});
afterEach(async () => {
  await engine?.close();
  engine = undefined;
  await rm(dir, { recursive: true, force: true });
});

/** Replaces a file the way deploy tools do: write beside it, then rename over it. */
async function replace(path: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}

async function until(check: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(2);
  }
  return performance.now() - start;
}

describe("PolicyEngine hot reload", () => {
  it("swaps in a bundle that denies a method within 1 s while calls keep flowing, and rejects a corrupt one", async () => {
    const wasmPath = join(dir, "policy.wasm");
    const dataPath = join(dir, "data.json");
    await copyFile(committedWasmPath, wasmPath);
    await copyFile(committedDataPath, dataPath);
    const registry = new Registry();
    engine = await openPolicyEngine({ wasmPath, debounceMs: 20, registry });
    const events: PolicyEvent[] = [];
    engine.onEvent((e) => events.push(e));
    const firstRevision = engine.revision;
    const authorize = createPolicyAuthorizer(engine);

    // The load: both calls every tick, counting anything unexpected.
    let running = true;
    let planAllowed = true;
    let calls = 0;
    const unexpected: string[] = [];
    const loop = (async () => {
      while (running) {
        const plan = await authorize({
          peer: executor,
          principal: undefined,
          method: planGoal,
          request: sampleRequest(planGoal),
        });
        planAllowed = plan.allow;
        const find = await authorize({
          peer: executor,
          principal: undefined,
          method: findAgents,
          request: sampleRequest(findAgents),
        });
        if (!find.allow) unexpected.push(find.reason);
        calls++;
        await new Promise((r) => setImmediate(r));
      }
    })();

    await until(() => calls > 50, 2000);
    expect(planAllowed).toBe(true);

    // 1. New data revokes executor → PlannerService/PlanGoal.
    const data = JSON.parse(await readFile(dataPath, "utf8"));
    const grants: string[] = data.agentmesh.config.service_grants.executor;
    data.agentmesh.config.service_grants.executor = grants.filter((g) => !g.endsWith("/PlanGoal"));
    await replace(dataPath, JSON.stringify(data));
    const tookMs = await until(() => !planAllowed, 1000);
    expect(tookMs).toBeLessThan(1000);
    const secondRevision = engine.revision;
    expect(secondRevision).not.toBe(firstRevision);
    expect(events).toContainEqual({
      type: "loaded",
      revision: secondRevision,
      previous: firstRevision,
    });

    // 2. A corrupt module is rejected; the last good bundle keeps serving.
    const before = calls;
    await replace(wasmPath, Buffer.from("\0asm this is not a policy"));
    await until(() => events.some((e) => e.type === "reload_failed"), 2000);
    await until(() => calls > before + 50, 2000);
    expect(engine.ready).toBe(true);
    expect(engine.revision).toBe(secondRevision);
    expect(planAllowed).toBe(false);
    const failed = events.find((e) => e.type === "reload_failed");
    expect(failed).toMatchObject({ serving: secondRevision });
    expect(failed?.type === "reload_failed" && failed.error.message).toMatch(
      /invalid policy bundle: policy.wasm does not load/,
    );

    // 3. Data that is not JSON: rejected the same way.
    await copyFile(committedWasmPath, wasmPath);
    await replace(dataPath, "{ not json");
    await until(() => events.filter((e) => e.type === "reload_failed").length >= 2, 2000);
    expect(engine.revision).toBe(secondRevision);

    running = false;
    await loop;
    expect(unexpected).toEqual([]);
    const text = await registry.metrics();
    expect(text).toMatch(/agentmesh_policy_reloads_total\{result="error"\} [2-9]/);
    expect(text).toMatch(/agentmesh_policy_ready 1/);
    expect(text).toContain(`agentmesh_policy_bundle_info{revision="${secondRevision}"} 1`);
    expect(text).toMatch(/agentmesh_policy_decisions_total\{result="allow",cached="true"\} \d+/);
  });

  it("fails closed with no bundle, reports not ready, and starts serving when one appears", async () => {
    const registry = new Registry();
    engine = await openPolicyEngine({
      wasmPath: join(dir, "policy.wasm"),
      debounceMs: 20,
      registry,
    });
    expect(engine.ready).toBe(false);
    const authorize = createPolicyAuthorizer(engine);
    const call = () =>
      authorize({
        peer: meshPeer("cli"),
        principal: undefined,
        method: planGoal,
        request: sampleRequest(planGoal),
      });
    expect(await call()).toMatchObject({
      allow: false,
      reason: "no policy loaded: denying every call (fail closed)",
      principalTrusted: false,
    });
    expect(() => engine!.evaluate({})).toThrow(/no policy loaded/);
    expect(await registry.metrics()).toMatch(/agentmesh_policy_ready 0/);

    await copyFile(committedDataPath, join(dir, "data.json"));
    await copyFile(committedWasmPath, join(dir, "policy.wasm"));
    await until(() => engine!.ready, 1000);
    expect((await call()).allow).toBe(true);
    expect(await registry.metrics()).toMatch(/agentmesh_policy_ready 1/);
  });

  it("reports events as an async iterable that ends on close", async () => {
    await copyFile(committedWasmPath, join(dir, "policy.wasm"));
    await writeFile(join(dir, "data.json"), "[]");
    engine = await openPolicyEngine({ wasmPath: join(dir, "policy.wasm"), watch: false });
    expect(engine.ready).toBe(false);
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of engine!.events()) seen.push(e.type);
    })();
    await copyFile(committedDataPath, join(dir, "data.json"));
    expect(await engine.reload()).toBe(true);
    expect(await engine.reload()).toBe(false); // unchanged: no reload
    await engine.close();
    await reader;
    expect(seen).toEqual(["loaded"]);
  });
});
