/**
 * Hot reload with the real compiled policy and real files: a loop of
 * decisions keeps running while the bundle changes under it.
 */
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { gunzipSync } from "node:zlib";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createPolicyAuthorizer } from "./authorizer.js";
import { compileBundle } from "./build.js";
import { unpackBundleArchive } from "./bundle.js";
import {
  openPolicyEngine,
  type PolicyEngine,
  type PolicyEvent,
  type ShadowDifference,
} from "./engine.js";
import { buildPolicyInput } from "./input.js";
import { tarGz, untar } from "./tar.js";
import {
  bundleWithData,
  committedBundlePath,
  committedDataPath,
  findOpa,
  meshMethods,
  meshPeer,
  sampleRequest,
  scratchPolicies,
} from "./testing.js";

const opa = findOpa();

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

/** The committed bundle with `text` as its data.json (a new revision). */
async function bundleWithRawData(text: string): Promise<Buffer> {
  const files = untar(gunzipSync(await readFile(committedBundlePath)));
  files.set("data.json", Buffer.from(text));
  files.set(
    ".manifest",
    Buffer.from(
      JSON.stringify({
        revision: "raw",
        wasm: [{ entrypoint: "agentmesh/authz/decision", module: "/policy.wasm" }],
      }),
    ),
  );
  return tarGz([...files].map(([n, b]) => [`/${n}`, b] as [string, Buffer]));
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
    const path = join(dir, "agentmesh.tar.gz");
    await copyFile(committedBundlePath, path);
    const registry = new Registry();
    engine = await openPolicyEngine({ path, debounceMs: 20, registry });
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

    // 1. A bundle whose data revokes executor → PlannerService/PlanGoal.
    const data = JSON.parse(await readFile(committedDataPath, "utf8"));
    const grants: string[] = data.agentmesh.config.service_grants.executor;
    data.agentmesh.config.service_grants.executor = grants.filter((g) => !g.endsWith("/PlanGoal"));
    await replace(path, await bundleWithData(data));
    const tookMs = await until(() => !planAllowed, 1000);
    expect(tookMs).toBeLessThan(1000);
    const secondRevision = engine.revision;
    expect(secondRevision).not.toBe(firstRevision);
    expect(events).toContainEqual({
      type: "loaded",
      revision: secondRevision,
      previous: firstRevision,
    });

    // 2. A corrupt archive is rejected; the last good bundle keeps serving.
    const before = calls;
    await replace(path, Buffer.from("this is not a bundle"));
    await until(() => events.some((e) => e.type === "reload_failed"), 2000);
    await until(() => calls > before + 50, 2000);
    expect(engine.ready).toBe(true);
    expect(engine.revision).toBe(secondRevision);
    expect(planAllowed).toBe(false);
    const failed = events.find((e) => e.type === "reload_failed");
    expect(failed).toMatchObject({ serving: secondRevision });
    expect(failed?.type === "reload_failed" && failed.error.message).toMatch(
      /invalid policy bundle: not a .tar.gz bundle/,
    );
    expect(engine.status().lastError).toMatch(/not a .tar.gz bundle/);

    // 3. Data that is not JSON: rejected the same way.
    await replace(path, await bundleWithRawData("{ not json"));
    await until(() => events.filter((e) => e.type === "reload_failed").length >= 2, 2000);
    expect(engine.revision).toBe(secondRevision);

    running = false;
    await loop;
    expect(unexpected).toEqual([]);
    const text = await registry.metrics();
    expect(text).toMatch(/agentmesh_policy_reloads_total\{result="error"\} [2-9]/);
    expect(text).toMatch(/agentmesh_policy_last_reload_error 1/);
    expect(text).toMatch(/agentmesh_policy_ready 1/);
    expect(text).toContain(
      `agentmesh_policy_bundle_info{revision="${secondRevision}",role="live"} 1`,
    );
    expect(text).toMatch(/agentmesh_policy_decisions_total\{result="allow",cached="true"\} \d+/);
  });

  it("still loads a bare policy.wasm with data.json beside it (older deployments)", async () => {
    const archive = await readFile(committedBundlePath);
    const { wasm, data } = unpackBundleArchive(archive);
    await writeFile(join(dir, "policy.wasm"), wasm);
    await writeFile(join(dir, "data.json"), data);
    engine = await openPolicyEngine({ path: join(dir, "policy.wasm"), watch: false });
    expect(engine.ready).toBe(true);
    expect(engine.candidatePath).toBeUndefined();
  });

  it("fails closed with no bundle, reports not ready, and starts serving when one appears", async () => {
    const registry = new Registry();
    engine = await openPolicyEngine({
      path: join(dir, "agentmesh.tar.gz"),
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

    await replace(join(dir, "agentmesh.tar.gz"), await readFile(committedBundlePath));
    await until(() => engine!.ready, 1000);
    expect((await call()).allow).toBe(true);
    expect(await registry.metrics()).toMatch(/agentmesh_policy_ready 1/);
  });

  it("reports events as an async iterable that ends on close", async () => {
    const path = join(dir, "agentmesh.tar.gz");
    await writeFile(path, await bundleWithData([]));
    engine = await openPolicyEngine({ path, watch: false });
    expect(engine.ready).toBe(false);
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of engine!.events()) seen.push(e.type);
    })();
    await copyFile(committedBundlePath, path);
    expect(await engine.reload()).toBe(true);
    expect(await engine.reload()).toBe(false); // unchanged: no reload
    await engine.close();
    await reader;
    expect(seen).toEqual(["loaded"]);
  });
});

/** A second `decision` rule: what an OPA-Envoy author writes first. It conflicts with the built-in one. */
const secondDecision = (tenant: string) => `package agentmesh.authz

decision := {"allow": false, "reason": "${tenant} is frozen", "principal_trusted": false} if {
	input.resource.tenant_id == "${tenant}"
}
`;

describe.skipIf(!opa)("bundles that fail at evaluation time", () => {
  it("rejects on reload a bundle that errors on the corpus, with the error text, and keeps the last good one", async () => {
    const bad = await compileBundle({
      dir: await scratchPolicies(dir, { "authz/frozen.rego": secondDecision("acme") }),
      opa,
    });
    const path = join(dir, "agentmesh.tar.gz");
    await copyFile(committedBundlePath, path);
    const registry = new Registry();
    engine = await openPolicyEngine({ path, watch: false, registry });
    const good = engine.revision;
    await replace(path, bad.archive);
    expect(await engine.reload()).toBe(false);
    expect(engine.revision).toBe(good);
    expect(engine.status().lastError).toMatch(
      /invalid policy bundle: policy fails to evaluate: policies\/authz\/frozen\.rego:3:1: var assignment conflict \(on agentmesh\.v1\.\S+ by spiffe:\/\/agentmesh\.local\/ns\/agentmesh\/sa\/\S+/,
    );
    expect(await registry.metrics()).toMatch(/agentmesh_policy_last_reload_error 1/);
    // The same bad file is not checked again on every poll; rolling back to the serving one clears the error.
    expect(await engine.reload()).toBe(false);
    await replace(path, await readFile(committedBundlePath));
    expect(await engine.reload()).toBe(false);
    expect(engine.status().lastError).toBeUndefined();
    expect(await registry.metrics()).toMatch(/agentmesh_policy_last_reload_error 0/);
    await replace(path, bad.archive);
    expect(await engine.reload()).toBe(false);
    expect(engine.status().lastError).toMatch(/var assignment conflict/);
    // A good bundle clears the error.
    await replace(
      path,
      await bundleWithData(JSON.parse(await readFile(committedDataPath, "utf8"))),
    );
    expect(await engine.reload()).toBe(true);
    expect(engine.status().lastError).toBeUndefined();
    expect(await registry.metrics()).toMatch(/agentmesh_policy_last_reload_error 0/);
  });

  it("denies a call the policy fails on, counts it, and says why", async () => {
    // Conflicts only for a tenant no corpus input names: the bundle loads.
    const { archive } = await compileBundle({
      dir: await scratchPolicies(dir, { "authz/frozen.rego": secondDecision("initech") }),
      opa,
    });
    const path = join(dir, "agentmesh.tar.gz");
    await writeFile(path, archive);
    const registry = new Registry();
    engine = await openPolicyEngine({ path, watch: false, registry });
    expect(engine.ready).toBe(true);
    const d = engine.decide(
      buildPolicyInput({
        peer: executor,
        principal: undefined,
        method: planGoal,
        request: sampleRequest(planGoal, { tenant_id: "initech" }),
      }),
    );
    expect(d).toMatchObject({ allow: false, reason: "policy evaluation failed", cached: false });
    expect(d.error).toMatch(/frozen\.rego:3:1: var assignment conflict/);
    expect(await registry.metrics()).toMatch(/agentmesh_policy_evaluation_errors_total 1/);
  });
});

describe("shadow mode", () => {
  it("decides with a candidate beside the live bundle and reports only what would change", async () => {
    const path = join(dir, "agentmesh.tar.gz");
    await copyFile(committedBundlePath, path);
    const changes: ShadowDifference[] = [];
    const events: PolicyEvent[] = [];
    const registry = new Registry();
    engine = await openPolicyEngine({
      path,
      watch: false,
      registry,
      onShadow: (d) => changes.push(d),
    });
    engine.onEvent((e) => events.push(e));
    expect(engine.candidatePath).toBe(join(dir, "candidate.tar.gz"));
    const authorize = createPolicyAuthorizer(engine);
    const call = (method = planGoal) =>
      authorize({ peer: executor, principal: undefined, method, request: sampleRequest(method) });

    // The candidate revokes executor → PlanGoal.
    const data = JSON.parse(await readFile(committedDataPath, "utf8"));
    const grants: string[] = data.agentmesh.config.service_grants.executor;
    data.agentmesh.config.service_grants.executor = grants.filter((g) => !g.endsWith("/PlanGoal"));
    await writeFile(join(dir, "candidate.tar.gz"), await bundleWithData(data));
    await engine.reload();
    const candidate = engine.candidateRevision;
    expect(candidate).toBeDefined();
    expect(events).toContainEqual({ type: "candidate_loaded", revision: candidate });

    // The live bundle still decides; the candidate's different answer is reported, cached or not.
    for (let i = 0; i < 3; i++) {
      expect((await call()).allow).toBe(true);
      expect((await call(findAgents)).allow).toBe(true);
    }
    expect(changes).toHaveLength(3);
    expect(changes[0]).toMatchObject({
      input: { method: { full: "agentmesh.v1.PlannerService/PlanGoal" } },
      live: { allow: true },
      candidate: {
        allow: false,
        revision: candidate,
        reason:
          "peer spiffe://agentmesh.local/ns/agentmesh/sa/executor may not call agentmesh.v1.PlannerService/PlanGoal",
      },
    });
    const text = await registry.metrics();
    expect(text).toContain('agentmesh_policy_shadow_decisions_total{changed="true"} 3');
    expect(text).toContain('agentmesh_policy_shadow_decisions_total{changed="false"} 3');
    expect(text).toContain(
      `agentmesh_policy_bundle_info{revision="${candidate}",role="candidate"} 1`,
    );

    // A corrupt candidate is rejected (and said so); removing the file ends shadow mode.
    await writeFile(join(dir, "candidate.tar.gz"), "garbage");
    await engine.reload();
    expect(engine.candidateRevision).toBeUndefined();
    expect(engine.status().candidateError).toMatch(/not a .tar.gz bundle/);
    await rm(join(dir, "candidate.tar.gz"));
    await engine.reload();
    expect(engine.status()).toMatchObject({ candidate: undefined, candidateError: undefined });
    await call();
    expect(changes).toHaveLength(3);
  });
});
