import { describe, expect, it } from "vitest";
import { Code, MeshError } from "../../../lib/errors/mesh-error.js";
import type { ChooseStrategyInput } from "./choose-strategy.js";
import {
  chooseStrategy,
  needsWarmStart,
  routingKey,
  validateCandidates,
} from "./choose-strategy.js";
import type { DecisionContext } from "./context-bucket.js";
import { SELECTOR_FLAG } from "./feature-flags.js";
import { applyOutcome, emptyParameters } from "./parameters.js";
import { createRng } from "./random.js";
import { warmStartPriors } from "./warm-start.js";

const now = Date.UTC(2025, 0, 1);
const context: DecisionContext = {
  tenantId: "acme",
  goalKind: "summarize",
  sizeClass: "s",
  text: "sum up",
};

function input(extra: Partial<ChooseStrategyInput> = {}): ChooseStrategyInput {
  return {
    context,
    candidates: ["solo", "team"],
    parameters: emptyParameters({ version: "v7" }),
    rng: createRng(1),
    now,
    ...extra,
  };
}

function codeOf(f: () => unknown): Code | undefined {
  try {
    f();
  } catch (err) {
    if (err instanceof MeshError) return err.code;
    throw err;
  }
  return undefined;
}

describe("chooseStrategy", () => {
  it("returns the fields of ChooseStrategyResponse", () => {
    const r = chooseStrategy(input({ canary: true }));
    expect(["solo", "team"]).toContain(r.strategy);
    expect(r).toMatchObject({
      selector: "thompson",
      parametersVersion: "v7",
      canary: true,
      bucket: "tenant=acme/kind=summarize/size=s",
      warmStarted: false,
    });
    expect(Object.keys(r.scores).sort()).toEqual(["solo", "team"]);
    expect(r.reason.length).toBeGreaterThan(0);
  });

  it("rejects bad candidate lists with INVALID_ARGUMENT", () => {
    for (const candidates of [
      [],
      ["a", "a"],
      ["a", " "],
      Array.from({ length: 65 }, (_, i) => `s${i}`),
    ]) {
      expect(codeOf(() => chooseStrategy(input({ candidates })))).toBe(Code.InvalidArgument);
    }
    expect(() => validateCandidates(["one"])).not.toThrow();
  });

  it("runs the selector the most specific flag names, falling back on unknown names", () => {
    const flags = [
      { key: SELECTOR_FLAG, value: "epsilon-greedy" },
      { key: SELECTOR_FLAG, value: "fixed", tenantId: "acme", goalKind: "summarize" },
    ];
    expect(chooseStrategy(input({ flags })).selector).toBe("fixed");
    expect(
      chooseStrategy(input({ flags, context: { ...context, goalKind: "other" } })).selector,
    ).toBe("epsilon-greedy");
    const r = chooseStrategy(input({ flags: [{ key: SELECTOR_FLAG, value: "magic" }] }));
    expect(r.selector).toBe("thompson");
    expect(r.reason).toMatch(/unknown selector "magic"/);
  });

  it("reads the statistics of the context's bucket only", () => {
    const p = emptyParameters();
    const other = { ...context, tenantId: "globex" };
    for (let i = 0; i < 50; i++) {
      applyOutcome(p, {
        goalId: `g${i}`,
        context,
        strategy: "team",
        parametersVersion: "",
        success: true,
        latencyMs: 10,
        cost: 0,
        finishedAt: now,
        collaborative: true,
        agentResults: [],
      });
    }
    expect(needsWarmStart(p, context, ["solo", "team"], now)).toBe(false);
    expect(needsWarmStart(p, other, ["solo", "team"], now)).toBe(true);
    const rng = createRng(3);
    let team = 0;
    for (let i = 0; i < 100; i++) {
      if (chooseStrategy(input({ parameters: p, rng })).strategy === "team") team++;
    }
    expect(team).toBeGreaterThan(90);
  });

  it("adds warm-start priors only for a cold bucket", () => {
    const neighbours = Array.from({ length: 30 }, (_, i) => ({
      item: { strategy: "team", success: i % 10 !== 0 },
      similarity: 0.9,
    }));
    const cold = chooseStrategy(input({ neighbours }));
    expect(cold.warmStarted).toBe(true);
    expect(cold.reason).toMatch(/warm-started/);
    const priors = warmStartPriors(neighbours, ["solo", "team"]);
    expect(priors.team!.successes + priors.team!.failures).toBeCloseTo(10);
    expect(priors.solo).toBeUndefined();
    expect(
      warmStartPriors([{ item: { strategy: "team", success: true }, similarity: 0.1 }], ["team"]),
    ).toEqual({});
  });

  it("routes by the goal id feature when given", () => {
    expect(routingKey({ ...context, features: { goal_id: "g1" } })).toBe("goal:g1");
    expect(routingKey(context)).toBe(routingKey({ ...context }));
    expect(routingKey(context)).not.toBe(routingKey({ ...context, text: "other" }));
  });
});

describe("chooseStrategy properties", () => {
  it("always returns one of the candidates, whatever the stored statistics", async () => {
    const fc = await import("fast-check");
    const num = fc.oneof(fc.double(), fc.constant(Number.NaN), fc.constant(-1), fc.nat(1000));
    fc.assert(
      fc.property(
        fc.uniqueArray(
          fc.string({ minLength: 1, maxLength: 8 }).filter((s) => s.trim() !== ""),
          {
            minLength: 1,
            maxLength: 6,
          },
        ),
        fc.array(fc.tuple(num, num, num, num)),
        fc.constantFrom("thompson", "ucb1", "epsilon-greedy", "fixed", "contextual"),
        fc.integer(),
        (candidates, rows, selector, seed) => {
          const p = emptyParameters();
          const bucket: Record<string, (typeof p.buckets)[string][string]> = {};
          candidates.forEach((c, i) => {
            const r = rows[i];
            if (r) {
              bucket[c] = {
                successes: r[0],
                failures: r[1],
                pulls: 1,
                meanLatencyMs: r[2],
                meanCost: r[3],
                updatedAt: now,
              };
            }
          });
          p.buckets["tenant=acme/kind=summarize/size=s"] = bucket;
          const r = chooseStrategy(
            input({
              candidates,
              parameters: p,
              rng: createRng(seed),
              flags: [{ key: SELECTOR_FLAG, value: selector }],
            }),
          );
          return candidates.includes(r.strategy) && r.selector === selector;
        },
      ),
      { numRuns: 300 },
    );
  });
});
