import { describe, expect, it } from "vitest";
import { createRng, randomInt, sampleBeta, sampleGamma, sampleNormal } from "./random.js";

function moments(draw: () => number, n: number): { mean: number; variance: number } {
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < n; i++) {
    const x = draw();
    sum += x;
    sq += x * x;
  }
  const mean = sum / n;
  return { mean, variance: sq / n - mean * mean };
}

describe("createRng", () => {
  it("replays the same sequence for the same seed and differs across seeds", () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(xs);
    expect(createRng("run-1").next()).toBe(createRng("run-1").next());
  });

  it("is uniform on [0, 1)", () => {
    const rng = createRng(7);
    const buckets = new Array(10).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = rng.next();
      if (!(x >= 0 && x < 1)) outside++;
      buckets[Math.floor(x * 10)]++;
    }
    expect(outside).toBe(0);
    for (const n of buckets) expect(Math.abs(n - 10_000)).toBeLessThan(500);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[randomInt(rng, 3)]!++;
    for (const n of counts) expect(n).toBeGreaterThan(850);
  });
});

describe("samplers", () => {
  it("draws standard normals", () => {
    const rng = createRng(1);
    const m = moments(() => sampleNormal(rng), 50_000);
    expect(Math.abs(m.mean)).toBeLessThan(0.02);
    expect(m.variance).toBeCloseTo(1, 1);
  });

  it.each([0.3, 1, 2.5, 40])(
    "draws Gamma(%s) with mean and variance equal to the shape",
    (shape) => {
      const rng = createRng(shape * 1000);
      const m = moments(() => sampleGamma(rng, shape), 50_000);
      expect(Math.abs(m.mean - shape) / shape).toBeLessThan(0.03);
      expect(Math.abs(m.variance - shape) / shape).toBeLessThan(0.08);
    },
  );

  it("draws Beta(a, b) with mean a / (a + b)", () => {
    const rng = createRng(3);
    for (const [a, b] of [
      [1, 1],
      [2, 8],
      [90, 10],
      [0.5, 0.5],
    ] as const) {
      const m = moments(() => sampleBeta(rng, a, b), 30_000);
      expect(m.mean).toBeCloseTo(a / (a + b), 2);
      const v = (a * b) / ((a + b) ** 2 * (a + b + 1));
      expect(Math.abs(m.variance - v) / v).toBeLessThan(0.1);
    }
  });

  it("rejects a non-positive shape", () => {
    expect(() => sampleGamma(createRng(), 0)).toThrow(RangeError);
  });
});
