/**
 * The policy engine: one loaded bundle, a decision cache, hot reload, and an
 * optional shadow candidate.
 *
 * `openPolicyEngine` loads the bundle archive (`bundles/agentmesh.tar.gz`: code
 * and data in one file, read in one go) and watches its directory. A changed
 * bundle is validated first — it must load and answer the reload corpus
 * (`corpus.ts`: an input per method and identity, the last 512 inputs this
 * engine evaluated, and recently logged decisions) without an error — and then swapped in one assignment
 * (evaluation is synchronous, so no call ever sees half a bundle). A bad one
 * is rejected with its error text in the log, the `reload_failed` event,
 * `agentmesh_policy_last_reload_error` and `status()` (the `/readyz`
 * detail); the last good one keeps serving. With no bundle at all every call
 * is denied and `ready` is false (fail closed), until a good bundle appears.
 *
 * **Shadow mode**: while a candidate bundle exists beside the live one
 * (`candidatePath`, default `<dir>/candidate.tar.gz`), every decision is
 * also made by the candidate, and each one whose answer differs is handed to
 * `onShadow` (the runtime writes them to the shadow log that
 * `agentmesh policy shadow` reports), before anyone swaps it in.
 *
 * @example
 * const engine = await openPolicyEngine({ path: "bundles/agentmesh.tar.gz" });
 * engine.onEvent((e) => log.info(e, "policy"));
 * const { allow, reason } = engine.decide(buildPolicyInput(call));
 * await engine.close();
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Registry } from "prom-client";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { Logger } from "../log/logger.js";
import type { Decision } from "../rpc/authorizer.js";
import { type DirectoryWatch, serialReloads, watchDirectories } from "../watch/file-reload.js";
import {
  bundleRevision,
  errorText,
  isBundleArchive,
  loadBundleArchive,
  loadPolicyBundle,
  type PolicyBundle,
  unpackBundleArchive,
} from "./bundle.js";
import { builtinCorpus, checkCorpus } from "./corpus.js";
import { DecisionCache, type DecisionCacheOptions } from "./decision-cache.js";
import { decisionCacheKey, type PolicyInput } from "./input.js";
import { type DecisionCounts, type PolicyMetrics, policyMetrics } from "./metrics.js";

export interface PolicyEngineOptions {
  /**
   * The bundle: an OPA bundle archive (`.tar.gz`), or (older deployments) a
   * bare `policy.wasm` with `dataPath` beside it. Default
   * `bundles/agentmesh.tar.gz` (see `AGENTMESH_POLICY`).
   */
  path?: string;
  /** With a bare `policy.wasm` only: its data. Default `data.json` beside it. */
  dataPath?: string;
  /**
   * A candidate bundle evaluated beside the live one (shadow mode) while the
   * file exists. Default `candidate.tar.gz` beside an archive `path`; none
   * for a bare wasm.
   */
  candidatePath?: string;
  /** Called with every decision the candidate would answer differently. */
  onShadow?: (difference: ShadowDifference) => void;
  /** Recorded inputs a new bundle must also answer (e.g. the decision log's tail). */
  recordedInputs?: () => Promise<unknown[]>;
  /** Watch the files and hot-reload on change. Default true. */
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

/** What the engine reports about its bundles, as it happens. */
export type PolicyEvent =
  | { type: "loaded"; revision: string; previous: string | undefined }
  | { type: "reload_failed"; error: MeshError; serving: string | undefined }
  | { type: "candidate_loaded"; revision: string }
  | { type: "candidate_rejected"; error: MeshError }
  | { type: "candidate_removed"; revision: string };

/** A decision with where it came from. */
export interface EngineDecision extends Decision {
  /** Revision of the bundle that decided; undefined when no bundle is loaded. */
  revision: string | undefined;
  /** Whether the decision cache answered. */
  cached: boolean;
  /** Why the evaluation failed (the call is then denied); undefined when the policy answered. */
  error?: string;
}

/** A decision the shadow candidate makes differently from the live bundle. */
export interface ShadowDifference {
  input: PolicyInput;
  live: EngineDecision;
  candidate: EngineDecision;
}

/** What an operator needs to know about the engine (the `/readyz` detail). */
export interface PolicyStatus {
  ready: boolean;
  revision: string | undefined;
  /** The shadow candidate's revision, while one is loaded. */
  candidate: string | undefined;
  /** Why the last reload of the live bundle was rejected; cleared by the next good load. */
  lastError: string | undefined;
  /** Why the candidate was rejected; cleared when a good candidate loads or it is removed. */
  candidateError: string | undefined;
}

interface Serving {
  bundle: PolicyBundle;
  cache: DecisionCache;
}

/** How many recently evaluated inputs a new bundle is checked against. */
const recentInputs = 512;

const notReady: EngineDecision = Object.freeze({
  allow: false,
  reason: "no policy loaded: denying every call (fail closed)",
  principalTrusted: false,
  revision: undefined,
  cached: false,
});

export class PolicyEngine {
  readonly path: string;
  readonly dataPath: string | undefined;
  readonly candidatePath: string | undefined;
  readonly metrics: PolicyMetrics;
  readonly #options: PolicyEngineOptions;
  readonly #listeners = new Set<(event: PolicyEvent) => void>();
  readonly #wakers = new Set<() => void>();
  readonly #count: DecisionCounts;
  #serving: Serving | undefined;
  #candidate: Serving | undefined;
  #lastError: string | undefined;
  #candidateError: string | undefined;
  /**
   * Inputs this engine evaluated lately (cache misses, a ring): recorded
   * traffic a new bundle must answer too, even with no decision log.
   */
  readonly #recent: PolicyInput[] = [];
  #recentNext = 0;
  /** The candidate file's content hash last rejected, so a bad file is not re-checked every poll. */
  #rejectedCandidate: string | undefined;
  #rejectedLive: string | undefined;
  /** The last archive read from each path and its fingerprint: a poll that reads the same bytes stops there. */
  #fingerprints = new Map<string, { archive: Buffer; fingerprint: string }>();
  #watching: DirectoryWatch | undefined;
  #closed = false;
  readonly #reloads = serialReloads(
    () => this.#reloadOnce(),
    () => this.#closed,
  );

  /** An engine with no bundle yet (denies everything); `load` or `reload` gives it one. */
  constructor(options: PolicyEngineOptions = {}) {
    this.#options = options;
    this.path = resolve(options.path ?? "bundles/agentmesh.tar.gz");
    const archive = isBundleArchive(this.path);
    this.dataPath = archive
      ? undefined
      : resolve(options.dataPath ?? join(dirname(this.path), "data.json"));
    this.candidatePath =
      options.candidatePath !== undefined
        ? resolve(options.candidatePath)
        : archive
          ? join(dirname(this.path), "candidate.tar.gz")
          : undefined;
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

  /** Revision of the shadow candidate, while one is loaded. */
  get candidateRevision(): string | undefined {
    return this.#candidate?.bundle.revision;
  }

  status(): PolicyStatus {
    return {
      ready: this.ready,
      revision: this.revision,
      candidate: this.candidateRevision,
      lastError: this.#lastError,
      candidateError: this.#candidateError,
    };
  }

  /**
   * Decides one input. Synchronous; a cache hit is one map lookup. The cache
   * key is every part of the input except `time` (see `decisionCacheKey`);
   * `useCache: false` always evaluates. With a shadow candidate loaded, the
   * candidate decides too and a different answer goes to `onShadow`.
   */
  decide(input: PolicyInput, useCache = true): EngineDecision {
    const serving = this.#serving;
    if (serving === undefined) {
      this.#count.denyFresh++;
      return notReady;
    }
    const key = useCache ? decisionCacheKey(input) : undefined;
    const decision = this.#decideWith(serving, input, key, true);
    if (this.#candidate !== undefined) this.#shadow(this.#candidate, input, key, decision);
    return decision;
  }

  #decideWith(
    serving: Serving,
    input: PolicyInput,
    key: string | undefined,
    live: boolean,
  ): EngineDecision {
    const now = input.time.unix_ms;
    if (key !== undefined) {
      // The cache holds finished answers (cached: true), so a hit allocates nothing.
      const hit = serving.cache.get(key, now) as EngineDecision | undefined;
      if (hit !== undefined) {
        if (live) {
          if (hit.allow) this.#count.allowCached++;
          else this.#count.denyCached++;
        }
        return hit;
      }
    }
    const revision = serving.bundle.revision;
    let decision: Decision;
    try {
      decision = serving.bundle.decide(input);
    } catch (err) {
      // An evaluation error (a rule conflict, a trap) denies this call only; not cached.
      const error = errorText(err);
      if (live) {
        this.metrics.evaluationErrors.inc();
        this.#count.denyFresh++;
        this.#options.logger?.error(
          { err: error, revision, method: input.method.full },
          "policy evaluation failed",
        );
      }
      return {
        allow: false,
        reason: "policy evaluation failed",
        principalTrusted: false,
        revision,
        cached: false,
        error,
      };
    }
    if (key !== undefined) {
      serving.cache.set(key, Object.freeze({ ...decision, revision, cached: true }), now);
    }
    if (live) {
      this.#recent[this.#recentNext] = input;
      this.#recentNext = (this.#recentNext + 1) % recentInputs;
      if (decision.allow) this.#count.allowFresh++;
      else this.#count.denyFresh++;
    }
    return { ...decision, revision, cached: false };
  }

  #shadow(
    candidate: Serving,
    input: PolicyInput,
    key: string | undefined,
    live: EngineDecision,
  ): void {
    const other = this.#decideWith(candidate, input, key, false);
    const changed =
      other.allow !== live.allow ||
      other.reason !== live.reason ||
      other.principalTrusted !== live.principalTrusted;
    this.metrics.shadow.inc({ changed: changed ? "true" : "false" });
    if (!changed) return;
    try {
      this.#options.onShadow?.({ input, live, candidate: other });
    } catch (err) {
      this.#options.logger?.error({ err }, "shadow listener threw");
    }
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
    this.#lastError = undefined;
    this.#rejectedLive = undefined;
    const m = this.metrics;
    m.reloads.inc({ result: "ok" });
    m.ready.set(1);
    m.lastReloadError.set(0);
    this.#publishRevisions();
    if (previous !== bundle.revision) {
      this.#options.logger?.info({ revision: bundle.revision, previous }, "policy bundle loaded");
    }
    this.#emit({ type: "loaded", revision: bundle.revision, previous });
  }

  /** Evaluates `bundle` beside the live one from now on (shadow mode); undefined stops it. */
  shadowWith(bundle: PolicyBundle | undefined): void {
    const previous = this.#candidate?.bundle.revision;
    this.#candidate = bundle && { bundle, cache: new DecisionCache(this.#options.cache) };
    this.#candidateError = undefined;
    this.#publishRevisions();
    if (bundle) {
      this.#options.logger?.info({ candidate: bundle.revision }, "policy candidate in shadow mode");
      this.#emit({ type: "candidate_loaded", revision: bundle.revision });
    } else if (previous) {
      this.#options.logger?.info({ candidate: previous }, "policy candidate removed");
      this.#emit({ type: "candidate_removed", revision: previous });
    }
  }

  #publishRevisions(): void {
    const info = this.metrics.bundleInfo;
    info.reset();
    if (this.#serving) info.set({ revision: this.#serving.bundle.revision, role: "live" }, 1);
    if (this.#candidate)
      info.set({ revision: this.#candidate.bundle.revision, role: "candidate" }, 1);
  }

  /**
   * Reads the bundle (and the candidate) and swaps in what is valid and
   * changed. Resolves true when a new live bundle now serves; never rejects:
   * a bad bundle keeps the last good one and raises `reload_failed`.
   */
  reload(): Promise<boolean> {
    return this.#reloads.run();
  }

  async #reloadOnce(): Promise<boolean> {
    const changed = await this.#reloadLive();
    await this.#reloadCandidate();
    return changed;
  }

  /**
   * The bundle's revision, unpacked (gunzip and untar, about 1 ms for the built-in bundle)
   * only when the bytes differ from the last read of `path`: every poll reads the file.
   */
  #fingerprintOf(path: string, archive: Buffer): string {
    const last = this.#fingerprints.get(path);
    if (last?.archive.equals(archive)) return last.fingerprint;
    const { wasm, data, revision } = unpackBundleArchive(archive);
    const fingerprint = revision || bundleRevision(wasm, data);
    this.#fingerprints.set(path, { archive, fingerprint });
    return fingerprint;
  }

  /** Loads a bundle from bytes and checks it against the corpus; throws FAILED_PRECONDITION. */
  async #validate(load: () => Promise<PolicyBundle>): Promise<PolicyBundle> {
    const bundle = await load();
    const recorded = (await this.#options.recordedInputs?.().catch(() => [])) ?? [];
    checkCorpus(bundle, [...builtinCorpus(bundle.data), ...this.#recent, ...recorded]);
    return bundle;
  }

  async #reloadLive(): Promise<boolean> {
    let fingerprint: string | undefined;
    try {
      let load: () => Promise<PolicyBundle>;
      if (this.dataPath === undefined) {
        // One read: code and data of the same bundle, never a mix.
        const archive = await readFile(this.path);
        fingerprint = this.#fingerprintOf(this.path, archive);
        load = () => loadBundleArchive(archive);
      } else {
        const [wasm, data] = await Promise.all([readFile(this.path), readFile(this.dataPath)]);
        fingerprint = bundleRevision(wasm, data);
        load = () => loadPolicyBundle(wasm, data);
      }
      if (fingerprint === this.#serving?.bundle.revision) {
        // The file is the bundle serving (e.g. a bad one rolled back): nothing is wrong any more.
        if (this.#lastError !== undefined) {
          this.#lastError = undefined;
          this.#rejectedLive = undefined;
          this.metrics.lastReloadError.set(0);
        }
        return false;
      }
      if (fingerprint === this.#rejectedLive) return false;
      const bundle = await this.#validate(load);
      if (this.#closed) return false;
      this.load(bundle);
      return true;
    } catch (err) {
      const error = MeshError.from(err);
      if (fingerprint !== undefined) this.#rejectedLive = fingerprint;
      const serving = this.#serving?.bundle.revision;
      this.#lastError = error.message;
      this.metrics.reloads.inc({ result: "error" });
      this.metrics.lastReloadError.set(1);
      this.#options.logger?.error(
        { err: error.message, serving, path: this.path },
        serving ? "policy bundle rejected; keeping the last good one" : "no policy bundle loaded",
      );
      this.#emit({ type: "reload_failed", error, serving });
      return false;
    }
  }

  async #reloadCandidate(): Promise<void> {
    const path = this.candidatePath;
    if (path === undefined) return;
    let archive: Buffer;
    try {
      archive = await readFile(path);
    } catch {
      // No candidate file: shadow mode is off.
      this.#rejectedCandidate = undefined;
      if (this.#candidate || this.#candidateError) this.shadowWith(undefined);
      return;
    }
    let fingerprint: string | undefined;
    try {
      fingerprint = this.#fingerprintOf(path, archive);
      if (
        fingerprint === this.#candidate?.bundle.revision ||
        fingerprint === this.#rejectedCandidate
      ) {
        return;
      }
      const bundle = await this.#validate(() => loadBundleArchive(archive));
      if (this.#closed) return;
      this.#rejectedCandidate = undefined;
      this.shadowWith(bundle);
    } catch (err) {
      const error = MeshError.from(err);
      this.#rejectedCandidate = fingerprint ?? "unreadable";
      this.#candidate = undefined;
      this.#publishRevisions();
      this.#candidateError = error.message;
      this.#options.logger?.error(
        { err: error.message, path: basename(path) },
        "policy candidate rejected",
      );
      this.#emit({ type: "candidate_rejected", error });
    }
  }

  /** Starts watching the bundle files (idempotent per engine). */
  watch(): void {
    if (this.#watching || this.#closed) return;
    const dirs = [dirname(this.path)];
    if (this.dataPath) dirs.push(dirname(this.dataPath));
    if (this.candidatePath) dirs.push(dirname(this.candidatePath));
    this.#watching = watchDirectories(dirs, () => void this.reload(), {
      debounceMs: this.#options.debounceMs ?? 100,
      pollMs: this.#options.pollIntervalMs ?? 5000,
      onError: (err, dir) =>
        this.#options.logger?.warn({ err, dir }, "policy watch failed; polling continues"),
    });
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
