/**
 * The policy engine: one loaded bundle, a decision cache, and hot reload.
 *
 * `openPolicyEngine` loads `policy.wasm` and `data.json` and watches their
 * directories. A changed bundle is validated first and then swapped in one
 * assignment (evaluation is synchronous, so no call ever sees half a bundle);
 * a bad one is rejected, the last good one keeps serving, and a
 * `reload_failed` event and metric say so. With no bundle at all every call is
 * denied and `ready` is false (fail closed), until a good bundle appears.
 *
 * @example
 * const engine = await openPolicyEngine({ wasmPath: "policies/policy.wasm" });
 * engine.onEvent((e) => log.info(e, "policy"));
 * const { allow, reason } = engine.decide(buildPolicyInput(call));
 * await engine.close();
 */
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import type { Registry } from "prom-client";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { Logger } from "../log/logger.js";
import type { Decision } from "../rpc/authorizer.js";
import { type DirectoryWatch, serialReloads, watchDirectories } from "../watch/file-reload.js";
import { bundleRevision, loadPolicyBundle, type PolicyBundle } from "./bundle.js";
import { DecisionCache, type DecisionCacheOptions } from "./decision-cache.js";
import { decisionCacheKey, type PolicyInput } from "./input.js";
import { type DecisionCounts, type PolicyMetrics, policyMetrics } from "./metrics.js";

export interface PolicyEngineOptions {
  /** The compiled policy. Default `policies/policy.wasm` (see `AGENTMESH_POLICY`). */
  wasmPath?: string;
  /** The data the policy decides with. Default `data.json` beside the wasm. */
  dataPath?: string;
  /** Watch both files and hot-reload on change. Default true. */
  watch?: boolean;
  /** Quiet period after a file event before reloading (writers touch files twice). Default 100 ms. */
  debounceMs?: number;
  /** Re-check the files this often too, where file events get lost; default 5000 ms, 0 off. */
  pollIntervalMs?: number;
  /** Decision cache bounds; `{ maxEntries: 0 }` disables caching. */
  cache?: DecisionCacheOptions;
  /** Where the policy metrics go; default a private registry. */
  registry?: Registry;
  /** Operational log (reloads, failures); never the decisions themselves. */
  logger?: Logger;
}

/** What the engine reports about its bundle, as it happens. */
export type PolicyEvent =
  | { type: "loaded"; revision: string; previous: string | undefined }
  | { type: "reload_failed"; error: MeshError; serving: string | undefined };

/** A decision with where it came from. */
export interface EngineDecision extends Decision {
  /** Revision of the bundle that decided; undefined when no bundle is loaded. */
  revision: string | undefined;
  /** Whether the decision cache answered. */
  cached: boolean;
}

interface Serving {
  bundle: PolicyBundle;
  cache: DecisionCache;
}

const notReady: EngineDecision = Object.freeze({
  allow: false,
  reason: "no policy loaded: denying every call (fail closed)",
  principalTrusted: false,
  revision: undefined,
  cached: false,
});

export class PolicyEngine {
  readonly wasmPath: string;
  readonly dataPath: string;
  readonly metrics: PolicyMetrics;
  readonly #options: PolicyEngineOptions;
  readonly #listeners = new Set<(event: PolicyEvent) => void>();
  readonly #wakers = new Set<() => void>();
  readonly #count: DecisionCounts;
  #serving: Serving | undefined;
  #watching: DirectoryWatch | undefined;
  #closed = false;
  readonly #reloads = serialReloads(
    () => this.#reloadOnce(),
    () => this.#closed,
  );

  /** An engine with no bundle yet (denies everything); `load` or `reload` gives it one. */
  constructor(options: PolicyEngineOptions = {}) {
    this.#options = options;
    this.wasmPath = resolve(options.wasmPath ?? "policies/policy.wasm");
    this.dataPath = resolve(options.dataPath ?? join(dirname(this.wasmPath), "data.json"));
    this.metrics = policyMetrics(options.registry);
    this.#count = this.metrics.counts;
    this.metrics.ready.set(0);
  }

  /** True while a bundle is loaded; false means fail closed (health: not serving). */
  get ready(): boolean {
    return this.#serving !== undefined;
  }

  /** Revision of the bundle serving now. */
  get revision(): string | undefined {
    return this.#serving?.bundle.revision;
  }

  /**
   * Decides one input. Synchronous; a cache hit is one map lookup. The cache
   * key is every part of the input except `time` (see `decisionCacheKey`);
   * `useCache: false` always evaluates.
   */
  decide(input: PolicyInput, useCache = true): EngineDecision {
    const serving = this.#serving;
    if (serving === undefined) {
      this.#count.denyFresh++;
      return notReady;
    }
    const now = input.time.unix_ms;
    const key = useCache ? decisionCacheKey(input) : undefined;
    if (key !== undefined) {
      // The cache holds finished answers (cached: true), so a hit allocates nothing.
      const hit = serving.cache.get(key, now) as EngineDecision | undefined;
      if (hit !== undefined) {
        if (hit.allow) this.#count.allowCached++;
        else this.#count.denyCached++;
        return hit;
      }
    }
    let decision: Decision;
    try {
      decision = serving.bundle.decide(input);
    } catch (err) {
      // A trap (e.g. out of memory on an absurd input) denies this call only; not cached.
      this.#options.logger?.error({ err }, "policy evaluation failed");
      this.#count.denyFresh++;
      return {
        allow: false,
        reason: "policy evaluation failed",
        principalTrusted: false,
        revision: serving.bundle.revision,
        cached: false,
      };
    }
    const revision = serving.bundle.revision;
    if (key !== undefined) {
      serving.cache.set(key, Object.freeze({ ...decision, revision, cached: true }), now);
    }
    if (decision.allow) this.#count.allowFresh++;
    else this.#count.denyFresh++;
    return { ...decision, revision, cached: false };
  }

  /** Evaluates any input document against the serving bundle, uncached (CLI `policy eval`). */
  evaluate(input: unknown): unknown {
    const serving = this.#serving;
    if (serving === undefined) throw new MeshError(Code.Unavailable, notReady.reason);
    return serving.bundle.evaluate(input);
  }

  /** Serves `bundle` from now on, with a fresh decision cache. */
  load(bundle: PolicyBundle): void {
    const previous = this.#serving?.bundle.revision;
    this.#serving = { bundle, cache: new DecisionCache(this.#options.cache) };
    const m = this.metrics;
    m.reloads.inc({ result: "ok" });
    m.ready.set(1);
    m.bundleInfo.reset();
    m.bundleInfo.set({ revision: bundle.revision }, 1);
    if (previous !== bundle.revision) {
      this.#options.logger?.info({ revision: bundle.revision, previous }, "policy bundle loaded");
    }
    this.#emit({ type: "loaded", revision: bundle.revision, previous });
  }

  /**
   * Reads both files and swaps the bundle in if it is valid and changed.
   * Resolves true when a new bundle now serves; never rejects: a bad bundle
   * keeps the last good one and raises `reload_failed`.
   */
  reload(): Promise<boolean> {
    return this.#reloads.run();
  }

  async #reloadOnce(): Promise<boolean> {
    try {
      const [wasm, data] = await Promise.all([readFile(this.wasmPath), readFile(this.dataPath)]);
      if (this.#serving && bundleRevision(wasm, data) === this.#serving.bundle.revision) {
        return false;
      }
      const bundle = await loadPolicyBundle(wasm, data);
      if (this.#closed) return false;
      this.load(bundle);
      return true;
    } catch (err) {
      const error = MeshError.from(err);
      const serving = this.#serving?.bundle.revision;
      this.metrics.reloads.inc({ result: "error" });
      this.#options.logger?.error(
        { err: error.message, serving },
        serving ? "policy bundle rejected; keeping the last good one" : "no policy bundle loaded",
      );
      this.#emit({ type: "reload_failed", error, serving });
      return false;
    }
  }

  /** Starts watching the bundle files (idempotent per engine). */
  watch(): void {
    if (this.#watching || this.#closed) return;
    this.#watching = watchDirectories(
      [dirname(this.wasmPath), dirname(this.dataPath)],
      () => void this.reload(),
      {
        debounceMs: this.#options.debounceMs ?? 100,
        pollMs: this.#options.pollIntervalMs ?? 5000,
        onError: (err, dir) =>
          this.#options.logger?.warn({ err, dir }, "policy watch failed; polling continues"),
      },
    );
  }

  /** Calls `listener` for every event; returns the unsubscribe function. */
  onEvent(listener: (event: PolicyEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Events as an async iterable (ends when the engine closes). */
  async *events(): AsyncIterable<PolicyEvent> {
    const queue: PolicyEvent[] = [];
    let wake: () => void = () => {};
    const off = this.onEvent((e) => {
      queue.push(e);
      wake();
    });
    const waker = () => wake();
    this.#wakers.add(waker);
    try {
      while (true) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#closed) return;
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    } finally {
      off();
      this.#wakers.delete(waker);
    }
  }

  #emit(event: PolicyEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#options.logger?.error({ err }, "policy event listener threw");
      }
    }
  }

  /** Stops watching. Decisions keep working with the bundle loaded last. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#watching?.close();
    this.#watching = undefined;
    await this.#reloads.settled();
    for (const wake of this.#wakers) wake();
  }
}

/**
 * Opens an engine on the bundle files and (by default) watches them. A missing
 * or bad bundle does not throw: the engine starts not ready (denying every
 * call) and loads the bundle as soon as a good one appears.
 */
export async function openPolicyEngine(options: PolicyEngineOptions = {}): Promise<PolicyEngine> {
  const engine = new PolicyEngine(options);
  if (options.watch ?? true) engine.watch();
  await engine.reload();
  return engine;
}
