/**
 * Seeded randomness for the learning service: a xoshiro128** generator and the
 * samplers the bandits need (normal, Gamma by Marsaglia–Tsang, Beta). Every
 * random decision takes an `Rng`, so tests, simulations and benchmarks replay
 * exactly.
 *
 * @example
 * const rng = createRng("bench-seed-7");
 * const theta = sampleBeta(rng, 3, 9); // a draw from Beta(3, 9)
 */
import { hash32 } from "./murmur-hash.js";

/** A source of uniform numbers in [0, 1). */
export interface Rng {
  next(): number;
}

/**
 * A xoshiro128** generator seeded through splitmix32. A string seed is hashed
 * first, so `createRng("run-3")` is as reproducible as `createRng(3)`.
 */
export function createRng(seed: number | string = 0x9e3779b9): Rng {
  let x = typeof seed === "string" ? hash32(seed, 0x2545f491) : seed >>> 0;
  const splitmix = (): number => {
    x = (x + 0x9e3779b9) | 0;
    let t = x ^ (x >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) | 0;
  };
  let s0 = splitmix();
  let s1 = splitmix();
  let s2 = splitmix();
  let s3 = splitmix();
  // An all-zero state would stay zero forever; splitmix makes it improbable, this makes it impossible.
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1;
  return {
    next(): number {
      const m = Math.imul(s1, 5);
      const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = (s3 << 11) | (s3 >>> 21);
      return result / 4294967296;
    },
  };
}

/** A uniform integer in [0, n). */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng.next() * n);
}

/** A standard normal draw (Marsaglia's polar method). */
export function sampleNormal(rng: Rng): number {
  for (;;) {
    const u = 2 * rng.next() - 1;
    const v = 2 * rng.next() - 1;
    const s = u * u + v * v;
    if (s > 0 && s < 1) return u * Math.sqrt((-2 * Math.log(s)) / s);
  }
}

/**
 * A Gamma(shape, 1) draw by Marsaglia and Tsang (2000). Shapes below 1 use the
 * boost Gamma(a) = Gamma(a + 1) · U^(1/a).
 */
export function sampleGamma(rng: Rng, shape: number): number {
  if (!(shape > 0)) throw new RangeError(`gamma shape must be positive, got ${shape}`);
  if (shape < 1) {
    const u = 1 - rng.next(); // (0, 1]: avoids log(0) downstream
    return sampleGamma(rng, shape + 1) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = sampleNormal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.next();
    const x2 = x * x;
    // The cheap squeeze accepts ~98% of draws without a logarithm.
    if (u < 1 - 0.0331 * x2 * x2) return d * v;
    if (u > 0 && Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Beta(alpha, beta) draw as X / (X + Y) with X ~ Gamma(alpha), Y ~ Gamma(beta). */
export function sampleBeta(rng: Rng, alpha: number, beta: number): number {
  const x = sampleGamma(rng, alpha);
  const y = sampleGamma(rng, beta);
  return x / (x + y);
}
