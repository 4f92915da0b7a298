/**
 * The learning service's state in the store, in the domain's shapes:
 *
 * - parameter versions: `parameter_versions` rows ↔ `VersionRecord`s; a
 *   version's trained `ParametersSnapshot` is its `params` JSON (immutable,
 *   cached in memory);
 * - online statistics: outcomes after training are folded into
 *   `strategy_stats` rows keyed by `<version>|<bucket>` (atomic upserts, so
 *   replicas never race on a read-modify-write); a selector sees snapshot +
 *   online counts;
 * - the serving versions: which trained versions are CURRENT or CANARY, as
 *   last seen; recording an outcome assumes them and the store checks;
 * - feature flags: `learning.*` rows of `feature_flags`, cached briefly.
 *
 * A decision (ChooseStrategy) reads the versions and its bucket's online row
 * and counts its choice; decisions waiting at the same moment share the reads
 * in flight and count their choices in one statement (group commit), so under
 * load a decision costs a fraction of a statement, and alone the same three.
 *
 * Known approximation: `recordPull` touches a row's `updated_at` without
 * decaying its counts, so decay after a pull is measured from the pull. With
 * day-scale half-lives the error is negligible.
 *
 * @example
 * const state = createLearningState({ store });
 * const { records } = await state.versions();
 * const params = await state.parameters("v3", bucket, now);
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, isMeshError, MeshError } from "../../lib/errors/mesh-error.js";
import { GroupCommit } from "../../lib/store/group-commit.js";
import type {
  ParametersVersionRecord,
  Store,
  StoreTransaction,
  StrategyOutcome,
  StrategyStatsRecord,
} from "../../lib/store/index.js";
import {
  type ArmStats,
  addViews,
  armView,
  CANARY_FLAG,
  CANARY_FRACTION_FLAG,
  emptyParameters,
  type FeatureFlag,
  type ParametersSnapshot,
  SELECTOR_FLAG,
  selectorConfig,
  type VersionRecord,
} from "./domain/index.js";

/** One choice of a strategy, counted in its `<version>|<bucket>` statistics row. */
interface PullCount {
  bucket: string;
  strategy: string;
  tenantId: string;
  goalKind: string;
}

/** The version that serves before any training run. */
export const untrainedVersion = "v0";

export interface LearningStateOptions {
  store: Store;
  /** How long flags are reused; default 5000 ms. */
  flagTtlMs?: number;
  /** Default `Date.now`. */
  clock?: () => number;
}

export interface Versions {
  records: VersionRecord[];
  /** Row revision per version, for optimistic updates. */
  revisions: Map<string, number>;
}

export type LearningState = ReturnType<typeof createLearningState>;

/** `<version>|<bucket>`: the strategy_stats key of a version's online statistics. */
export const onlineKey = (version: string, bucket: string) => `${version}|${bucket}`;

/** A stored parameters version as the domain sees it. */
export const toVersion = (r: ParametersVersionRecord): VersionRecord => ({
  version: r.version,
  state: r.state,
  createdAt: r.createdAt.getTime(),
  runId: r.runId,
  trafficFraction: r.trafficFraction,
  successes: r.successes,
  failures: r.failures,
  note: r.note,
});

export function createLearningState(options: LearningStateOptions) {
  const { store } = options;
  const clock = options.clock ?? Date.now;
  const snapshots = new Map<string, ParametersSnapshot>();
  let flagCache: { at: number; flags: Promise<FeatureFlag[]> } | undefined;
  // Reads the decisions waiting at the same moment share: the one in flight.
  let versionsRead: Promise<Versions> | undefined;
  const bucketReads = new Map<string, Promise<Record<string, ArmStats>>>();
  // Choices counted together: those made while a statement is in flight are the next one.
  const pulls = new GroupCommit<PullCount, true>(
    async (batch) => {
      await store.learning.recordPulls(batch);
      return batch.map(() => true as const);
    },
    { maxBatch: 512 },
  );
  // Trained versions last seen CURRENT or CANARY (none before training). Only a
  // guess: the statement recording an outcome checks it (see servingVersions).
  let serving: readonly string[] = [];
  const isServing = (s: string) => s === "CURRENT" || s === "CANARY";

  const toArm = (r: StrategyStatsRecord): ArmStats => ({
    successes: r.successes,
    failures: r.failures,
    pulls: r.pulls,
    meanLatencyMs: r.outcomes > 0 ? r.latencySumMs / r.outcomes : 0,
    meanCost: r.outcomes > 0 ? r.costSum / r.outcomes : 0,
    updatedAt: r.updatedAt.getTime(),
  });

  const snapshotOf = (r: ParametersVersionRecord): ParametersSnapshot => {
    const p = r.params as unknown as Partial<ParametersSnapshot>;
    const base = emptyParameters({ version: r.version, now: r.createdAt.getTime() });
    return {
      ...base,
      ...p,
      schema: 1,
      version: r.version,
      config: selectorConfig(p.config ?? {}),
      buckets: p.buckets ?? {},
    };
  };

  /**
   * The online rows of one `<version>|<bucket>` key by strategy (a primary-key
   * range), shared by the decisions waiting for the same key.
   */
  const bucketStats = (key: string): Promise<Record<string, ArmStats>> => {
    let read = bucketReads.get(key);
    if (!read) {
      read = store.learning
        .strategyStats({ bucket: key })
        .then((rows) => Object.fromEntries(rows.map((r) => [r.strategy, toArm(r)])))
        .finally(() => bucketReads.delete(key));
      bucketReads.set(key, read);
    }
    return read;
  };

  const state = {
    store,

    async versions(): Promise<Versions> {
      const rows = await store.learning.listParameters({ limit: 200 });
      serving = rows.filter((r) => isServing(r.state)).map((r) => r.version);
      return {
        records: rows.map(toVersion),
        revisions: new Map(rows.map((r) => [r.version, r.revision])),
      };
    },

    /**
     * The versions for a decision: the read in flight when there is one (begun
     * at most one statement's time earlier), else a new one.
     */
    sharedVersions(): Promise<Versions> {
      versionsRead ??= state.versions().finally(() => {
        versionsRead = undefined;
      });
      return versionsRead;
    },

    /** The trained snapshot of a version (`v0` or unknown: empty parameters). */
    async snapshot(version: string): Promise<ParametersSnapshot> {
      const hit = snapshots.get(version);
      if (hit) return hit;
      if (version === untrainedVersion) return emptyParameters();
      try {
        const p = snapshotOf(await store.learning.getParameters(version));
        snapshots.set(version, p);
        return p;
      } catch (err) {
        if (isMeshError(err) && err.code === Code.NotFound) return emptyParameters({ version });
        throw err;
      }
    },

    /** Online rows of a version for a tenant and kind, by bucket then strategy. */
    async online(
      version: string,
      scope: { tenantId?: string; goalKind?: string },
      tx: StoreTransaction = store,
    ): Promise<Map<string, Record<string, ArmStats>>> {
      const prefix = `${version}|`;
      const out = new Map<string, Record<string, ArmStats>>();
      for (const r of await tx.learning.strategyStats(scope)) {
        if (!r.bucket.startsWith(prefix)) continue;
        const bucket = r.bucket.slice(prefix.length);
        const row = out.get(bucket) ?? {};
        row[r.strategy] = toArm(r);
        out.set(bucket, row);
      }
      return out;
    },

    /**
     * The parameters a decision reads: the version's snapshot with the
     * bucket's online statistics added (other buckets as trained).
     */
    async parameters(version: string, bucket: string, now: number): Promise<ParametersSnapshot> {
      const snapshot = await state.snapshot(version);
      const online = await bucketStats(onlineKey(version, bucket));
      const trained = snapshot.buckets[bucket] ?? {};
      const merged: Record<string, ArmStats> = {};
      for (const strategy of new Set([...Object.keys(trained), ...Object.keys(online)])) {
        const v = addViews(
          armView(trained[strategy], now, snapshot.halfLifeMs),
          armView(online[strategy], now, snapshot.halfLifeMs),
        );
        merged[strategy] = { ...v, updatedAt: now };
      }
      return { ...snapshot, buckets: { ...snapshot.buckets, [bucket]: merged } };
    },

    /**
     * The trained versions CURRENT or CANARY as last seen: by `versions()`, by
     * this process's own `saveVersions`, or as told by `servedBy` when a
     * recorded outcome found others serving. Recording an outcome assumes
     * them and the store checks in the same statement, so a stale answer
     * costs that statement again, never a wrong count.
     */
    servingVersions(): readonly string[] {
      return serving;
    },

    /** Notes the serving versions a store statement saw. */
    servedBy(versions: readonly string[]): void {
      serving = versions;
    },

    /**
     * One outcome as a statistics row of each version: keyed
     * `<version>|<bucket>`, old counts decaying with the version's half-life.
     */
    async strategyOutcomes(
      versions: readonly string[],
      input: Omit<StrategyOutcome, "decayHalfLifeMs">,
    ): Promise<StrategyOutcome[]> {
      return Promise.all(
        versions.map(async (version) => {
          const { halfLifeMs } = await state.snapshot(version);
          return {
            ...input,
            bucket: onlineKey(version, input.bucket),
            // Not positive or not finite means no decay, as in decayFactor.
            decayHalfLifeMs: halfLifeMs > 0 && Number.isFinite(halfLifeMs) ? halfLifeMs : 0,
          };
        }),
      );
    },

    /** Counts a choice, in one statement with the choices made meanwhile (group commit). */
    async recordPull(
      version: string,
      input: { bucket: string; strategy: string; tenantId: string; goalKind: string },
    ): Promise<void> {
      await pulls.add({ ...input, bucket: onlineKey(version, input.bucket) });
    },

    /**
     * Persists the difference between two version lists in one transaction:
     * rows leaving CURRENT/CANARY first, then new rows, then rows entering
     * them, so the "one current, one canary" constraint holds at every
     * statement. ABORTED when another replica changed a row meanwhile.
     */
    async saveVersions(
      before: Versions,
      after: readonly VersionRecord[],
      fresh?: { version: string; params: ParametersSnapshot },
    ): Promise<void> {
      const old = new Map(before.records.map((v) => [v.version, v]));
      const changed = after.filter((v) => {
        const o = old.get(v.version);
        return (
          o &&
          (o.state !== v.state ||
            o.trafficFraction !== v.trafficFraction ||
            o.successes !== v.successes ||
            o.failures !== v.failures ||
            o.note !== v.note)
        );
      });
      const leaving = changed.filter(
        (v) => !isServing(v.state) || old.get(v.version)!.state === v.state,
      );
      const entering = changed.filter((v) => !leaving.includes(v));
      const created = after.filter((v) => !old.has(v.version));
      await store.transaction(async (tx) => {
        // Counts as increments: outcomes recorded since `before` was read stay counted.
        const update = (v: VersionRecord) =>
          tx.learning.updateParameters(v.version, before.revisions.get(v.version) ?? 0, {
            state: v.state,
            trafficFraction: v.trafficFraction,
            addSuccesses: v.successes - old.get(v.version)!.successes,
            addFailures: v.failures - old.get(v.version)!.failures,
            note: v.note.slice(0, 1000),
          });
        for (const v of leaving) await update(v);
        for (const v of created) {
          if (!fresh || fresh.version !== v.version) {
            throw new MeshError(Code.Internal, `no parameters for new version ${v.version}`);
          }
          await tx.learning.createParameters({
            version: v.version,
            state: v.state,
            params: fresh.params as unknown as JsonObject,
            trafficFraction: v.trafficFraction,
            runId: v.runId,
            note: v.note,
          });
        }
        for (const v of entering) await update(v);
      });
      serving = after.filter((v) => isServing(v.state)).map((v) => v.version);
    },

    /** Flags of the learning service (`learning.selector`, `learning.canary_fraction`, `learning.canary`). */
    flags(): Promise<FeatureFlag[]> {
      const now = clock();
      if (flagCache && now - flagCache.at < (options.flagTtlMs ?? 5000)) return flagCache.flags;
      const flags = Promise.all([
        store.flags.list({ key: SELECTOR_FLAG }),
        store.flags.list({ key: CANARY_FRACTION_FLAG }),
        store.flags.list({ key: CANARY_FLAG }),
      ]).then((lists) =>
        lists.flat().map(
          (f): FeatureFlag => ({
            key: f.key,
            value: typeof f.value === "string" ? f.value : JSON.stringify(f.value),
            tenantId: f.tenantId,
            goalKind: f.goalKind,
          }),
        ),
      );
      flagCache = { at: now, flags };
      flags.catch(() => {
        flagCache = undefined;
      });
      return flags;
    },
  };
  return state;
}
