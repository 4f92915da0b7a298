/**
 * A 64-bit SimHash of a feature vector (random-hyperplane LSH: bit i is the
 * sign of the vector's dot product with a fixed Gaussian hyperplane), so that
 * PostgreSQL can find similar experiences by a bounded, indexed query instead
 * of the service scanning recent rows. Two vectors at angle θ agree on each
 * bit with probability 1 − θ/π; the signature is cut into 8 bands of 8 bits,
 * and a candidate must share at least one band (a GIN-indexed `&&` on the
 * band codes) before it is ranked by Hamming distance.
 *
 * The hyperplanes are drawn from a fixed seed, so signatures are persisted
 * data: change them only with a new `SIGNATURE_VERSION`.
 *
 * @example
 * const sig = similaritySignature(contextVector(ctx));
 * // → { hash: "-4815162342…" (signed 64-bit, decimal), bands: [ 0·256 + b0, 1·256 + b1, … ] }
 */
import { FEATURE_DIM } from "./feature-hashing.js";
import { createRng, sampleNormal } from "./random.js";

export const SIGNATURE_VERSION = "sh1-64x8";
export const SIGNATURE_BITS = 64;
export const SIGNATURE_BANDS = 8;
const bandBits = SIGNATURE_BITS / SIGNATURE_BANDS;

export interface SimilaritySignature {
  /** The 64 bits as a signed 64-bit integer in decimal (a `bigint` column). */
  hash: string;
  /** Band codes `band · 256 + value`, one per band (an `int[]` column). */
  bands: number[];
}

let planes: Float64Array | undefined;

function hyperplanes(): Float64Array {
  if (!planes) {
    const rng = createRng(SIGNATURE_VERSION);
    planes = new Float64Array(SIGNATURE_BITS * FEATURE_DIM);
    for (let i = 0; i < planes.length; i++) planes[i] = sampleNormal(rng);
  }
  return planes;
}

/** The signature of a feature vector (entries past `FEATURE_DIM` are ignored). */
export function similaritySignature(vector: ArrayLike<number>): SimilaritySignature {
  const p = hyperplanes();
  const n = Math.min(vector.length, FEATURE_DIM);
  let bits = 0n;
  const bands = new Array<number>(SIGNATURE_BANDS).fill(0);
  for (let b = 0; b < SIGNATURE_BITS; b++) {
    let dot = 0;
    for (let j = 0; j < n; j++) dot += (vector[j] ?? 0) * p[b * FEATURE_DIM + j]!;
    if (dot > 0) {
      bits |= 1n << BigInt(b);
      const band = Math.floor(b / bandBits);
      bands[band]! |= 1 << (b % bandBits);
    }
  }
  return {
    hash: BigInt.asIntN(64, bits).toString(),
    bands: bands.map((v, i) => i * (1 << bandBits) + v),
  };
}

/** Bits in which two signatures differ. */
export function hammingDistance(a: SimilaritySignature, b: SimilaritySignature): number {
  let x = BigInt.asUintN(64, BigInt(a.hash) ^ BigInt(b.hash));
  let n = 0;
  while (x) {
    n += Number(x & 1n);
    x >>= 1n;
  }
  return n;
}
