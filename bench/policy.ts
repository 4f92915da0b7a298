/**
 * Policy decision latency with the committed compiled policy: the whole
 * authorizer path (input from descriptor and request, wasm evaluation,
 * decision) uncached over a rotating mix of real calls, and cached on
 * repeated calls. Baseline: the bare opa-wasm `evaluate` of a prebuilt input.
 * Targets (issue 4): p99 ≤ 100 µs uncached, ≤ 5 µs cached.
 */

import { createPolicyAuthorizer } from "../lib/policy/authorizer.js";
import { readPolicyBundle } from "../lib/policy/bundle.js";
import { openPolicyEngine } from "../lib/policy/engine.js";
import { buildPolicyInput } from "../lib/policy/input.js";
import {
  committedBundlePath,
  meshMethods,
  meshPeer,
  principal,
  sampleRequest,
} from "../lib/policy/testing.js";
import type { AuthorizationRequest } from "../lib/rpc/authorizer.js";
import type { Benchmark } from "./benchmark.js";
import { LatencyHistogram } from "./histogram.js";

function calls(): AuthorizationRequest[] {
  const callers = [
    { peer: meshPeer("executor"), principal: undefined },
    { peer: meshPeer("planner"), principal: undefined },
    { peer: meshPeer("agent-text"), principal: undefined },
    { peer: meshPeer("gateway"), principal: principal("acme", "ada", ["tenant.admin"]) },
    { peer: meshPeer("gateway"), principal: principal("globex", "gus", ["goals.read"]) },
    { peer: meshPeer("intruder"), principal: undefined },
  ];
  return callers.flatMap((c) =>
    meshMethods.map((method) => ({ ...c, method, request: sampleRequest(method) })),
  );
}

function measure(
  n: number,
  fn: (i: number) => unknown,
): { histogram: LatencyHistogram; meanNs: number } {
  const histogram = new LatencyHistogram();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    fn(i);
    histogram.recordUs(Number(process.hrtime.bigint() - start) / 1000);
  }
  return { histogram, meanNs: Number(process.hrtime.bigint() - t0) / n };
}

export const policy: Benchmark = {
  name: "policy",
  description:
    "authorizer decision latency (µs) with the compiled policy, uncached and cached, vs bare opa-wasm evaluate",
  async run({ smoke }) {
    const n = smoke ? 3_000 : 100_000;
    const engine = await openPolicyEngine({ path: committedBundlePath, watch: false });
    const bundle = await readPolicyBundle(committedBundlePath);
    const uncached = createPolicyAuthorizer(engine, { cache: false });
    const cached = createPolicyAuthorizer(engine);
    const mix = calls();
    const inputs = mix.map((c) => buildPolicyInput(c));
    const run = (name: string, fn: (i: number) => unknown) => {
      measure(Math.min(n, 5_000), fn); // warm up the JIT and the wasm heap
      const { histogram, meanNs } = measure(n, fn);
      const s = histogram.summary();
      return {
        name,
        count: s.count,
        p50Us: s.p50Us,
        p99Us: s.p99Us,
        p999Us: s.p999Us,
        maxUs: s.maxUs,
        meanNs: Math.round(meanNs),
      };
    };
    const baseline = run("opa-wasm evaluate", (i) => bundle.evaluate(inputs[i % inputs.length]));
    const cold = run("uncached", (i) => uncached(mix[i % mix.length]!));
    const warm = run("cached", (i) => cached(mix[i % mix.length]!));
    await engine.close();
    return {
      calls: mix.length,
      baseline,
      uncached: cold,
      cached: warm,
      ratioUncachedToBaseline: Math.round((cold.meanNs / baseline.meanNs) * 100) / 100,
      targets: { uncachedP99Us: 100, cachedP99Us: 5 },
      meetsTargets: cold.p99Us <= 100 && warm.p99Us <= 5,
    };
  },
};
