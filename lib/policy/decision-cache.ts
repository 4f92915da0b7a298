/**
 * A bounded LRU of policy decisions with a time-to-live. One cache belongs to
 * one loaded bundle; a reload starts a fresh one, so a decision never outlives
 * the policy that made it.
 *
 * @example
 * const cache = new DecisionCache({ maxEntries: 10_000, ttlMs: 10_000 });
 * cache.set(key, decision);
 * cache.get(key); // the decision, or undefined when absent or expired
 */
import type { Decision } from "../rpc/authorizer.js";

export interface DecisionCacheOptions {
  /** Most decisions kept; the least recently used goes first. Default 10,000; 0 disables the cache. */
  maxEntries?: number;
  /**
   * How long a decision is reused. Rules that read `input.time` (which is not
   * part of the key) see it at most this stale. Default 10,000 ms.
   */
  ttlMs?: number;
}

interface Entry {
  decision: Decision;
  expiresAt: number;
}

export class DecisionCache {
  readonly #map = new Map<string, Entry>();
  readonly #max: number;
  readonly #ttl: number;

  constructor(options: DecisionCacheOptions = {}) {
    this.#max = options.maxEntries ?? 10_000;
    this.#ttl = options.ttlMs ?? 10_000;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string, now = Date.now()): Decision | undefined {
    const entry = this.#map.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= now) {
      this.#map.delete(key);
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.#map.delete(key);
    this.#map.set(key, entry);
    return entry.decision;
  }

  set(key: string, decision: Decision, now = Date.now()): void {
    if (this.#max <= 0) return;
    this.#map.delete(key);
    if (this.#map.size >= this.#max) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
    this.#map.set(key, { decision, expiresAt: now + this.#ttl });
  }

  clear(): void {
    this.#map.clear();
  }
}
