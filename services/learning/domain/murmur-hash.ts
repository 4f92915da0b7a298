/**
 * A 32-bit MurmurHash3 over a string's UTF-16 code units (two per block). It
 * feeds feature hashing and canary routing, so its output is part of persisted
 * data (experience vectors): never change it without a new feature version.
 *
 * @example
 * hash32("summarize") // → an unsigned 32-bit integer, stable across runs
 */
export function hash32(text: string, seed = 0): number {
  let h = seed | 0;
  const n = text.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    let k = (text.charCodeAt(i) & 0xffff) | ((text.charCodeAt(i + 1) & 0xffff) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < n) {
    let k = text.charCodeAt(i) & 0xffff;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= n * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A string hashed to a number in [0, 1), e.g. for routing a stable fraction of goals. */
export function unitHash(text: string, seed = 0): number {
  return hash32(text, seed) / 4294967296;
}
