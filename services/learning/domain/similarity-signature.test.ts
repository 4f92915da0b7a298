import { describe, expect, it } from "vitest";
import { contextVector, cosineSimilarity } from "./feature-hashing.js";
import { hammingDistance, SIGNATURE_BANDS, similaritySignature } from "./similarity-signature.js";

const ctx = (text: string) => ({ tenantId: "acme", goalKind: "summarize", sizeClass: "s", text });

describe("similaritySignature", () => {
  it("is stable, 64 bits in 8 band codes", () => {
    const v = contextVector(ctx("summarize the quarterly sales report"));
    const s = similaritySignature(v);
    expect(similaritySignature(v)).toEqual(s);
    expect(s.bands).toHaveLength(SIGNATURE_BANDS);
    s.bands.forEach((code, i) => {
      expect(code >> 8).toBe(i);
    });
    const h = BigInt(s.hash);
    expect(h >= -(2n ** 63n) && h < 2n ** 63n).toBe(true);
  });

  it("puts similar goals at a smaller Hamming distance than unrelated ones", () => {
    const a = contextVector(ctx("summarize the quarterly sales report for the board"));
    const near = contextVector(ctx("summarize the quarterly sales report for investors"));
    const far = contextVector(ctx("translate this poem about autumn rain into japanese"));
    expect(cosineSimilarity(a, near)).toBeGreaterThan(cosineSimilarity(a, far));
    const sa = similaritySignature(a);
    expect(hammingDistance(sa, similaritySignature(near))).toBeLessThan(
      hammingDistance(sa, similaritySignature(far)),
    );
    expect(hammingDistance(sa, sa)).toBe(0);
  });
});
