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

/**
 * The hyperplanes by coordinate: entry `j * SIGNATURE_BITS + b` is coordinate
 * j of hyperplane b, so a vector's non-zero coordinates read them in a row.
 */
let planesByCoordinate: Float64Array | undefined;

function hyperplanes(): Float64Array {
  if (!planesByCoordinate) {
    // Drawn plane by plane (the persisted order), stored by coordinate.
    const rng = createRng(SIGNATURE_VERSION);
    planesByCoordinate = new Float64Array(SIGNATURE_BITS * FEATURE_DIM);
    for (let b = 0; b < SIGNATURE_BITS; b++) {
      for (let j = 0; j < FEATURE_DIM; j++) {
        planesByCoordinate[j * SIGNATURE_BITS + b] = sampleNormal(rng);
      }
    }
  }
  return planesByCoordinate;
}

/**
 * The signature of a feature vector (entries past `FEATURE_DIM` are ignored).
 * A goal's vector has a few non-zero coordinates of 256; only those are
 * multiplied, in ascending order, so each dot product is the dense one's sum
 * to the bit (a zero term never changes a float sum that starts at +0).
 */
export function similaritySignature(vector: ArrayLike<number>): SimilaritySignature {
  const p = hyperplanes();
  const n = Math.min(vector.length, FEATURE_DIM);
  const dots = new Float64Array(SIGNATURE_BITS);
  for (let j = 0; j < n; j++) {
    const x = vector[j] ?? 0;
    if (x === 0) continue;
    const row = j * SIGNATURE_BITS;
    for (let b = 0; b < SIGNATURE_BITS; b++) dots[b]! += x * p[row + b]!;
  }
  let bits = 0n;
  const bands = new Array<number>(SIGNATURE_BANDS).fill(0);
  for (let b = 0; b < SIGNATURE_BITS; b++) {
    if (dots[b]! > 0) {
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
