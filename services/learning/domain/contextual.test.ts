import { describe, expect, it } from "vitest";
import type { ArmView } from "./arm-stats.js";
import { chooseStrategy, sharedViews } from "./choose-strategy.js";
import { contextualPosterior, contextualSelector } from "./contextual-selector.js";
import { effectiveMemory, observeDiscounted, observeWithReset } from "./discounting.js";
import { SELECTOR_FLAG } from "./feature-flags.js";
import { applyOutcome, emptyParameters } from "./parameters.js";
import { createRng } from "./random.js";
import { selectorConfig } from "./selector.js";

const view = (successes: number, failures: number): ArmView => ({
  successes,
  failures,
  pulls: successes + failures,
  meanLatencyMs: 0,
  meanCost: 0,
});
const config = selectorConfig();
const ctx = { tenantId: "acme", goalKind: "summarize", sizeClass: "s" };

describe("contextual selector", () => {
  it("starts a sparse context from the strategy's shared rate, worth priorStrength observations", () => {
    const p = contextualPosterior(undefined, view(90, 10), config);
    expect(p.alpha + p.beta).toBeCloseTo(2 + config.contextual.priorStrength);
    expect(p.alpha / (p.alpha + p.beta)).toBeGreaterThan(0.7);
    // Shared evidence weaker than the strength counts only for what it is.
    const weak = contextualPosterior(undefined, view(1, 0), config);
    expect(weak.alpha + weak.beta).toBeCloseTo(3);
  });

  it("lets a context's own outcomes overrule the shared level", () => {
    const shared = { a: view(900, 100), b: view(100, 900) };
    const local = { a: view(2, 40), b: view(40, 2) };
    const rng = createRng(1);
    let b = 0;
    for (let i = 0; i < 200; i++) {
      if (contextualSelector(config).choose(ctx, ["a", "b"], local, rng, shared).strategy === "b")
        b++;
    }
    expect(b).toBeGreaterThan(195);
    // With no local outcomes the shared level decides.
    let a = 0;
    for (let i = 0; i < 200; i++) {
      if (contextualSelector(config).choose(ctx, ["a", "b"], {}, rng, shared).strategy === "a") a++;
    }
    expect(a).toBeGreaterThan(150);
  });

  it("is chosen by the selector flag and reads the tenant's other buckets as the shared level", () => {
    const p = emptyParameters();
    const other = { ...ctx, goalKind: "translate" };
    for (let i = 0; i < 40; i++) {
      applyOutcome(p, {
        goalId: `g${i}`,
        context: other,
        strategy: "team",
        parametersVersion: "",
        success: true,
        latencyMs: 0,
        cost: 0,
        finishedAt: 0,
        collaborative: true,
        agentResults: [],
      });
    }
    const shared = sharedViews(p, ctx, ["solo", "team"], 0);
    expect(shared.team!.successes).toBeCloseTo(40);
    expect(sharedViews(p, { ...ctx, tenantId: "globex" }, ["team"], 0).team!.successes).toBe(0);
    const flags = [{ key: SELECTOR_FLAG, value: "contextual", tenantId: "acme" }];
    const rng = createRng(2);
    let team = 0;
    for (let i = 0; i < 100; i++) {
      const r = chooseStrategy({
        context: ctx,
        candidates: ["solo", "team"],
        parameters: p,
        flags,
        rng,
        now: 0,
      });
      expect(r.selector).toBe("contextual");
      if (r.strategy === "team") team++;
    }
    expect(team).toBeGreaterThan(65);
  });
});

describe("forgetting per observation", () => {
  it("bounds a strategy's counts by 1 / (1 − discount) and leaves the others alone", () => {
    const views: Record<string, ArmView> = { other: view(5, 5) };
    for (let i = 0; i < 1000; i++) observeDiscounted(views, "a", true, 0.97);
    expect(views.a!.successes).toBeLessThanOrEqual(effectiveMemory(0.97));
    expect(views.a!.successes).toBeGreaterThan(effectiveMemory(0.97) - 0.01);
    expect(views.a!.pulls).toBe(1000);
    expect(views.other).toEqual(view(5, 5));
    expect(effectiveMemory(1)).toBe(Number.POSITIVE_INFINITY);
  });

  it("weighs an outcome k observations old by discount^k, so a degraded strategy's mean falls fast", () => {
    const views: Record<string, ArmView> = {};
    for (let i = 0; i < 500; i++) observeDiscounted(views, "a", true, 0.97);
    for (let i = 0; i < 20; i++) observeDiscounted(views, "a", false, 0.97);
    const v = views.a!;
    // Successes weigh 0.97^20 ≈ 0.54 of what they did; 20 failures count ≈ 15.3.
    expect(v.successes).toBeCloseTo(effectiveMemory(0.97) * 0.97 ** 20, 1);
    expect(v.successes / (v.successes + v.failures)).toBeLessThan(0.55);
    // Without discounting the same history still reads as 96 % success.
    const kept: Record<string, ArmView> = {};
    for (let i = 0; i < 500; i++) observeDiscounted(kept, "a", true, 1);
    for (let i = 0; i < 20; i++) observeDiscounted(kept, "a", false, 1);
    expect(kept.a!.successes / 520).toBeGreaterThan(0.95);
  });

  it("rejects a discount outside (0, 1]", () => {
    expect(() => observeDiscounted({}, "a", true, 0)).toThrow(RangeError);
    expect(() => observeDiscounted({}, "a", true, 1.5)).toThrow(RangeError);
  });
});

describe("reset on a drop of the recent rate", () => {
  it("replaces a long good record after a few failures, and not on ordinary noise", () => {
    const long: Record<string, ArmView> = {};
    const recent: Record<string, ArmView> = {};
    const rng = createRng(7);
    let resets = 0;
    for (let i = 0; i < 2000; i++) {
      if (observeWithReset(long, recent, "a", rng.next() < 0.9, { discount: 0.995 })) resets++;
    }
    expect(resets).toBeLessThan(10);
    let failuresToReset = 0;
    while (!observeWithReset(long, recent, "a", false)) failuresToReset++;
    expect(failuresToReset).toBeLessThan(6);
    const a = long.a!;
    expect(a.successes / (a.successes + a.failures)).toBeLessThan(0.5);
    expect(a.pulls).toBeGreaterThan(2000);
  });
});
