import { describe, expect, it } from "vitest";
import {
  contextVector,
  cosineSimilarity,
  FEATURE_DIM,
  featureVector,
  nearest,
  tokenize,
} from "./feature-hashing.js";

const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

describe("feature hashing", () => {
  it("tokenises words of any script, lower-cased", () => {
    expect(tokenize("Summarize the Q3-report, über schnell!")).toEqual([
      "summarize",
      "the",
      "q3",
      "report",
      "über",
      "schnell",
    ]);
  });

  it("gives deterministic, L2-normalised vectors of the fixed dimension", () => {
    const v = featureVector("summarize the quarterly report", { lang: "en" });
    expect(v).toHaveLength(FEATURE_DIM);
    expect(norm(v)).toBeCloseTo(1, 10);
    expect(featureVector("summarize the quarterly report", { lang: "en" })).toEqual(v);
    expect(featureVector("", {})).toEqual(new Array(FEATURE_DIM).fill(0));
    expect(featureVector("a b", {}, { dim: 64 })).toHaveLength(64);
  });

  it("ranks similar goals above unrelated ones", () => {
    const q = featureVector("summarize the quarterly sales report for the board");
    const similar = featureVector("summarize the quarterly sales report for investors");
    const unrelated = featureVector("translate this poem into japanese");
    expect(cosineSimilarity(q, similar)).toBeGreaterThan(0.6);
    expect(Math.abs(cosineSimilarity(q, unrelated))).toBeLessThan(0.3);
    expect(cosineSimilarity(q, q)).toBeCloseTo(1, 10);
    expect(cosineSimilarity(q, [1, 2])).toBe(0);
  });

  it("hashes context categories but never per-goal ids", () => {
    const base = { tenantId: "t", goalKind: "summarize", sizeClass: "s", text: "report" };
    const a = contextVector({ ...base, features: { goal_id: "g1" } });
    const b = contextVector({ ...base, features: { goal_id: "g2" } });
    expect(a).toEqual(b);
    const otherKind = contextVector({ ...base, goalKind: "translate" });
    expect(cosineSimilarity(a, otherKind)).toBeLessThan(0.9);
    expect(norm(contextVector({ ...base, text: "" }))).toBeCloseTo(1, 10);
  });

  it("finds the k nearest items above a similarity floor", () => {
    const q = featureVector("book a flight to paris");
    const items = [
      { id: "far", vector: featureVector("compile the kernel") },
      { id: "near", vector: featureVector("book a flight to paris tomorrow") },
      { id: "mid", vector: featureVector("book a hotel in paris") },
    ];
    const found = nearest(q, items, 2);
    expect(found.map((n) => n.item.id)).toEqual(["near", "mid"]);
    expect(found[0]!.similarity).toBeGreaterThan(found[1]!.similarity);
    expect(nearest(q, items, 5, 0.5).map((n) => n.item.id)).toEqual(["near"]);
    expect(nearest(q, items, 0)).toEqual([]);
  });
});
