import { describe, expect, it } from "vitest";
import { contextVector, cosineSimilarity, FEATURE_DIM } from "./feature-hashing.js";
import { createRng, sampleNormal } from "./random.js";
import {
  hammingDistance,
  SIGNATURE_BANDS,
  SIGNATURE_BITS,
  SIGNATURE_VERSION,
  similaritySignature,
} from "./similarity-signature.js";

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

  it("keeps the persisted signatures (stored experiences are searched by them)", () => {
    const sig = (text: string) => similaritySignature(contextVector(ctx(text)));
    expect(sig("summarize the quarterly sales report")).toEqual({
      hash: "8813779610656649254",
      bands: [38, 304, 709, 965, 1243, 1493, 1616, 1914],
    });
    expect(sig("translate this poem about autumn rain into japanese")).toEqual({
      hash: "-2546141327267497394",
      bands: [78, 378, 583, 1008, 1267, 1353, 1706, 2012],
    });
    expect(sig("")).toEqual({
      hash: "8985650836139241486",
      bands: [14, 368, 709, 979, 1235, 1393, 1715, 1916],
    });
  });

  it("equals the dense dot products on sparse, dense, short and long vectors", () => {
    const rng = createRng("signature-vectors");
    for (let i = 0; i < 300; i++) {
      const length = [FEATURE_DIM, 3, FEATURE_DIM + 7][i % 3]!;
      const density = [0.01, 0.1, 1][(i % 5) % 3]!;
      const v = Array.from({ length }, () =>
        rng.next() < density ? sampleNormal(rng) * (rng.next() < 0.1 ? 1e-300 : 1) : 0,
      );
      expect(similaritySignature(v)).toEqual(denseSignature(v));
    }
  });
});

/** The signature as first written: every plane's dot product over every coordinate. */
function denseSignature(vector: ArrayLike<number>) {
  const rng = createRng(SIGNATURE_VERSION);
  const planes = new Float64Array(SIGNATURE_BITS * FEATURE_DIM);
  for (let i = 0; i < planes.length; i++) planes[i] = sampleNormal(rng);
  const n = Math.min(vector.length, FEATURE_DIM);
  let bits = 0n;
  const bands = new Array<number>(SIGNATURE_BANDS).fill(0);
  for (let b = 0; b < SIGNATURE_BITS; b++) {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += (vector[j] ?? 0) * planes[b * FEATURE_DIM + j]!;
    if (dot > 0) {
      bits |= 1n << BigInt(b);
      bands[Math.floor(b / 8)]! |= 1 << (b % 8);
    }
  }
  return {
    hash: BigInt.asIntN(64, bits).toString(),
    bands: bands.map((v, i) => i * 256 + v),
  };
}
