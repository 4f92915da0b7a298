/**
 * The decision loop of `README.md`, against the store: choose, record,
 * train, guard and roll back. The RPC handlers and the bus consumers both
 * call it, so an outcome is handled the same way whichever path it took.
 *
 * @example
 * const engine = createLearningEngine({ store, log });
 * const decision = await engine.choose({ context, candidates: ["solo", "team"], goalId });
 * await engine.record(outcomeMessage); // false when the goal was already recorded
 * const { version } = await engine.train({ runId, reason: "manual" });
 */
import { randomUUID } from "node:crypto";
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import type { DecisionContext as DecisionContextMessage } from "../../gen/agentmesh/v1/common_pb.js";
import { type Outcome, OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, isMeshError, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import { MAX_SIMILAR } from "../../lib/store/experience-repository.js";
import { GroupCommit } from "../../lib/store/group-commit.js";
import type {
  ExperienceRecord,
  OutcomeForgetting,
  PreparedExperience,
  ReliabilityOutcome,
  Store,
  StrategyOutcome,
} from "../../lib/store/index.js";
import {
  applyVerdict,
  bucketKey,
  CANARY_FLAG,
  type ChooseStrategyResult,
  canaryVersion,
  chooseStrategy,
  contextVector,
  createReliabilityDrift,
  createRng,
  currentVersion,
  DEFAULT_FORGETTING,
  DEFAULT_HALF_LIFE_MS,
  type DecisionContext,
  type DriftGuardOptions,
  type DriftVerdict,
  evaluateCanary,
  needsWarmStart,
  nextVersionId,
  parseBucketKey,
  publishVersion,
  type ReliabilityDriftOptions,
  type ReliabilityDrop,
  type Rng,
  resolveCanaryFraction,
  resolveFlag,
  rollbackTo,
  routeVersion,
  routingKey,
  similarExperiences,
  type TrainingExperience,
  trainParameters,
  type VersionRecord,
  validateOutcome,
  withoutCanary,
} from "./domain/index.js";
import { similaritySignature } from "./domain/similarity-signature.js";
import { createLearningState, untrainedVersion } from "./learning-state.js";
import { contextFromMessage, outcomeFromMessage } from "./wire.js";

/** Feature that marks a hypothetical decision (e.g. ExplainPlan): no pull is recorded. */
export const dryRunFeature = "dry_run";

/** Features that identify one call rather than describe the goal: kept out of similarity. */
const routingFeatures = new Set(["goal_id", "goalId", dryRunFeature]);

/** The context's feature vector without per-call features (goal id, dry run). */
export function similarityVector(ctx: DecisionContext): number[] {
  const features: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.features ?? {}))
    if (!routingFeatures.has(k)) features[k] = v;
  return contextVector({ ...ctx, features });
}

export interface LearningEngineOptions {
  store: Store;
  log: Logger;
  /** Default `Date.now`. */
  clock?: () => number;
  /** Randomness of the selectors; default seeded from the clock and a random id. */
  rng?: Rng;
  /** Run the drift guard after this many recorded outcomes (per replica); default 25. */
  driftEvery?: number;
  /** Drift guard settings; default the domain's (95%, margin 0.02, 30 samples). */
  drift?: DriftGuardOptions;
  /**
   * Similar experiences fetched per wanted neighbour (the query ranks by
   * signature, the service re-ranks by cosine); default 2.
   */
  warmStartOverfetch?: number;
  /** Most experiences one training run replays; default 200,000. */
  maxTrainingExperiences?: number;
  /**
   * The drift guard on agent reliability (`domain/reliability-drift.ts`): when
   * an agent's recent success rate for a capability falls 0.4 below its
   * long-run rate, the online statistics of the strategies that used the
   * capability keep at most `keep` (default 2) observations' worth of
   * evidence. `false` turns it off. Each replica watches the outcomes it records.
   */
  reliabilityDrift?: (ReliabilityDriftOptions & { keep?: number }) | false;
  /**
   * Forgetting per outcome in the stored statistics, besides the version's
   * time half-life: default `DEFAULT_FORGETTING` (discount 0.995, a memory of
   * ~200 outcomes per strategy and bucket; recent memory 0.85; the long counts
   * replaced by the recent ones when those are 0.4 lower after ≥ 4). `false`:
   * forget only by time.
   */
  forgetting?: Partial<OutcomeForgetting> | false;
  /**
   * Most outcomes recorded in one statement; default 64. Outcomes are
   * batched only when they wait together (group commit), never held back.
   */
  maxOutcomeBatch?: number;
}

/** An outcome ready to record, waiting for its batch. */
interface PendingOutcome {
  tenantId: string;
  goalId: string;
  experience: PreparedExperience;
  /** Its statistics row in each serving version, but for the version and its decay. */
  observation: Omit<StrategyOutcome, "decayHalfLifeMs">;
  parametersVersion: string;
  success: boolean;
  reliability: ReliabilityOutcome[];
}

export interface ChooseInput {
  context: DecisionContextMessage | undefined;
  candidates: readonly string[];
  goalId?: string;
}

export type LearningEngine = ReturnType<typeof createLearningEngine>;

export function createLearningEngine(options: LearningEngineOptions) {
  const { store, log } = options;
  const clock = options.clock ?? Date.now;
  const rng = options.rng ?? createRng(`${Date.now()}-${randomUUID()}`);
  const state = createLearningState({ store, clock });
  const driftEvery = options.driftEvery ?? 25;
  let recordedSinceDrift = 0;
  let drift: Promise<DriftVerdict | undefined> | undefined;
  const reliabilityDrift =
    options.reliabilityDrift === false
      ? undefined
      : createReliabilityDrift(options.reliabilityDrift ?? {});
  const forgetting =
    options.forgetting === false ? undefined : { ...DEFAULT_FORGETTING, ...options.forgetting };
  const keepOnDrop = options.reliabilityDrift === false ? 0 : (options.reliabilityDrift?.keep ?? 2);

  const audit = (action: string, resource: string, details: JsonObject) =>
    store.audit
      .append({ actor: "system", action, resource, details })
      .catch((err: unknown) => log.warn({ err, action }, "audit append failed"));

  /**
   * The experiences of a tenant and kind most similar to a vector, for warm
   * start: a bounded, indexed query on the similarity signature (at most
   * k per candidate, ≤ 1,000 rows), ranked again by cosine in `similarExperiences`.
   */
  const warmStartSamples = async (
    tenantId: string,
    goalKind: string,
    vector: number[],
    candidates: readonly string[],
    k: number,
  ) => {
    const rows = await store.tenant(tenantId).experiences.similar({
      goalKind,
      strategies: candidates,
      signature: similaritySignature(vector),
      limit: Math.min(k * candidates.length * (options.warmStartOverfetch ?? 2), MAX_SIMILAR),
    });
    return rows.map((e) => ({
      strategy: e.strategy,
      success: e.success,
      latencyMs: e.latencyMs,
      cost: e.cost,
      finishedAt: e.createdAt.getTime(),
      vector: e.features,
    }));
  };

  /**
   * Records outcomes in one statement: the versions this process takes to
   * serve, checked by the store (another statement only when they changed).
   * A goal not recorded was recorded before, or is another tenant's.
   */
  const recordTogether = async (batch: readonly PendingOutcome[]): Promise<(boolean | Error)[]> => {
    for (let attempt = 1; ; attempt++) {
      const serving = state.servingVersions();
      const versions = serving.length > 0 ? serving : [untrainedVersion];
      const answer = await store.learning.recordOutcomes(
        serving,
        await Promise.all(
          batch.map(async (p) => ({
            experience: p.experience,
            strategy: await state.strategyOutcomes(versions, p.observation),
            parameters: serving.includes(p.parametersVersion)
              ? { version: p.parametersVersion, success: p.success }
              : undefined,
            reliability: p.reliability,
          })),
        ),
      );
      if (answer.status === "stale") {
        state.servedBy(answer.servingVersions);
        if (attempt === 3) {
          throw new MeshError(Code.Aborted, "parameter versions kept changing; retry the outcome");
        }
        continue;
      }
      const notRecorded = new Map<string, string[]>();
      batch.forEach((p, i) => {
        if (answer.recorded[i]) return;
        notRecorded.set(p.tenantId, [...(notRecorded.get(p.tenantId) ?? []), p.goalId]);
      });
      const theirs = new Set<string>();
      for (const [tenantId, goalIds] of notRecorded) {
        const recorded = await store.tenant(tenantId).experiences.recordedGoals(goalIds);
        for (const g of goalIds) if (recorded.has(g)) theirs.add(`${tenantId}\u0000${g}`);
      }
      return batch.map((p, i) => {
        if (answer.recorded[i]) return true;
        if (theirs.has(`${p.tenantId}\u0000${p.goalId}`)) return false;
        // The goal id is taken by another tenant's experience: do not reveal it.
        return new MeshError(Code.AlreadyExists, `an outcome for goal ${p.goalId} exists`);
      });
    }
  };

  /**
   * Group commit of outcomes. A batch that fails for good (an unknown tenant,
   * a value the statement refuses) is retried one outcome at a time, so one
   * bad outcome fails alone; a passing failure (the database away) fails the
   * batch, and each outcome's caller retries it.
   */
  const outcomes = new GroupCommit<PendingOutcome, boolean>(
    async (batch) => {
      try {
        return await recordTogether(batch);
      } catch (err) {
        if (batch.length === 1 || MeshError.from(err).retryable) throw err;
        log.debug({ err, outcomes: batch.length }, "outcome batch failed; recording one by one");
        const settled: (boolean | Error)[] = [];
        for (const p of batch) {
          settled.push(
            await recordTogether([p]).then(
              ([s]) => s!,
              (error: unknown) => MeshError.from(error),
            ),
          );
        }
        return settled;
      }
    },
    { key: (p) => p.goalId, maxBatch: options.maxOutcomeBatch ?? 64 },
  );

  const engine = {
    state,

    /** ChooseStrategy: route to a version, read its statistics, warm-start when cold, choose. */
    async choose(input: ChooseInput): Promise<ChooseStrategyResult> {
      const ctx = contextFromMessage(input.context);
      if (!ctx.tenantId) throw new MeshError(Code.InvalidArgument, "context.tenant_id is required");
      if (!ctx.goalKind) throw new MeshError(Code.InvalidArgument, "context.goal_kind is required");
      const dryRun = ctx.features?.[dryRunFeature] === "true";
      if (input.goalId) ctx.features = { ...ctx.features, goal_id: input.goalId };
      const now = clock();
      const [{ records }, flags] = await Promise.all([state.sharedVersions(), state.flags()]);
      // A tenant out of canaries is routed as if there were none (AdminService UpdateTenant).
      const canaryOff = resolveFlag(flags, CANARY_FLAG, ctx)?.value === "false";
      const routable = canaryOff ? withoutCanary(records) : records;
      const route = routeVersion(routable, routingKey(ctx)) ?? {
        version: untrainedVersion,
        canary: false,
      };
      const bucket = bucketKey(ctx);
      const parameters = await state.parameters(route.version, bucket, now);
      const vector = needsWarmStart(parameters, ctx, input.candidates, now)
        ? similarityVector(ctx)
        : undefined;
      const k = parameters.config.warmStart.k;
      const neighbours = vector
        ? similarExperiences(
            vector,
            await warmStartSamples(ctx.tenantId, ctx.goalKind, vector, input.candidates, k),
            input.candidates,
            k,
          )
        : undefined;
      const result = chooseStrategy({
        context: ctx,
        candidates: input.candidates,
        parameters,
        canary: route.canary,
        flags,
        neighbours,
        rng,
        now,
      });
      if (!dryRun) {
        await state.recordPull(route.version, {
          bucket,
          strategy: result.strategy,
          tenantId: ctx.tenantId,
          goalKind: ctx.goalKind,
        });
      }
      return result;
    },

    /**
     * RecordOutcome: stores the experience (once per goal) and, in the same
     * statement, updates the statistics of every serving version, the
     * serving counts of the version that chose, and agent reliability. The
     * outcomes waiting at the same time share that statement (group commit).
     * Resolves false when the goal's outcome was already recorded.
     */
    async record(message: Outcome | undefined): Promise<boolean> {
      const o = outcomeFromMessage(message, clock());
      validateOutcome(o);
      const ctx = o.context;
      if (!ctx.tenantId) throw new MeshError(Code.InvalidArgument, "context.tenant_id is required");
      const bucket = bucketKey(ctx);
      const features = similarityVector(ctx);
      const reliability = o.agentResults.map((r) => ({
        agentId: r.agentId,
        capability: r.capability,
        success: r.success,
      }));
      const pending: PendingOutcome = {
        tenantId: ctx.tenantId,
        goalId: o.goalId,
        experience: await store.tenant(ctx.tenantId).experiences.prepare({
          goalId: o.goalId,
          goalKind: ctx.goalKind,
          bucket,
          strategy: o.strategy,
          parametersVersion: o.parametersVersion,
          success: o.success,
          latencyMs: o.latencyMs,
          cost: o.cost,
          features,
          signature: similaritySignature(features),
          outcome: toJson(OutcomeSchema, message!) as JsonObject,
          createdAt: new Date(o.finishedAt),
        }),
        observation: {
          bucket,
          strategy: o.strategy,
          tenantId: ctx.tenantId,
          goalKind: ctx.goalKind,
          success: o.success,
          latencyMs: o.latencyMs,
          cost: o.cost,
          at: new Date(o.finishedAt),
          ...(forgetting ? { forgetting } : {}),
        },
        parametersVersion: o.parametersVersion,
        success: o.success,
        reliability,
      };
      const recorded = await outcomes.add(pending);
      const drops = recorded
        ? (reliabilityDrift?.observe(
            { tenantId: ctx.tenantId, goalKind: ctx.goalKind, strategy: o.strategy },
            reliability,
          ) ?? [])
        : [];
      for (const d of drops) {
        await engine
          .reliabilityDropped(d)
          .catch((err: unknown) => log.warn({ err }, "reliability drift reaction failed"));
      }
      if (recorded && ++recordedSinceDrift >= driftEvery) {
        recordedSinceDrift = 0;
        await engine.guard().catch((err: unknown) => log.warn({ err }, "drift guard failed"));
      }
      return recorded;
    },

    /** Outcomes recorded together: batches and outcomes (see `GroupCommit`). */
    outcomeBatches: outcomes.stats,

    /**
     * The drift guard: compares the canary with the current version and
     * promotes or rolls it back when the evidence is credible; audited.
     * Concurrent runs on one replica share one evaluation; a replica that
     * loses a race with another (ABORTED) leaves the decision to it.
     */
    guard(): Promise<DriftVerdict | undefined> {
      drift ??= (async () => {
        const before = await state.versions();
        const canary = canaryVersion(before.records);
        const current = currentVersion(before.records);
        if (!canary || !current) return undefined;
        const verdict = evaluateCanary(canary, current, options.drift);
        if (verdict.action === "continue") return verdict;
        try {
          await state.saveVersions(before, applyVerdict(before.records, verdict));
        } catch (err) {
          if (isMeshError(err) && err.code === Code.Aborted) return undefined;
          throw err;
        }
        const action = verdict.action === "promote" ? "promoted" : "rolled_back";
        log.info(
          { version: canary.version, action, reason: verdict.reason },
          "drift guard verdict",
        );
        await audit(`learning.parameters.${action}`, `parameters/${canary.version}`, {
          version: canary.version,
          baseline: current.version,
          reason: verdict.reason,
          pNoWorse: verdict.pNoWorse,
          pWorse: verdict.pWorse,
        });
        return verdict;
      })().finally(() => {
        drift = undefined;
      });
      return drift;
    },

    /**
     * The drift guard's answer to an agent that degraded: the statistics of
     * every strategy seen using its capability keep little evidence (their
     * rates unchanged), so the selectors re-learn them from the next outcomes
     * instead of trusting a record the agent no longer earns; audited.
     * Trained snapshots are left as they are (the next training run replays
     * the failures too).
     */
    async reliabilityDropped(drop: ReliabilityDrop): Promise<number> {
      const byScope = new Map<
        string,
        { tenantId: string; goalKind: string; strategies: string[] }
      >();
      for (const s of drop.strategies) {
        const key = `${s.tenantId}\u0000${s.goalKind}`;
        const scope = byScope.get(key) ?? {
          tenantId: s.tenantId,
          goalKind: s.goalKind,
          strategies: [],
        };
        scope.strategies.push(s.strategy);
        byScope.set(key, scope);
      }
      let rows = 0;
      for (const scope of byScope.values()) {
        rows += await store.learning.discountStrategyStats({ ...scope, keep: keepOnDrop });
      }
      const details = {
        agentId: drop.agentId,
        capability: drop.capability,
        longRate: drop.longRate,
        recentRate: drop.recentRate,
        strategies: drop.strategies.map((s) => `${s.tenantId}/${s.goalKind}/${s.strategy}`),
        rows,
      };
      log.info(details, "drift guard: agent reliability dropped; strategy statistics discounted");
      await audit("learning.reliability.dropped", `agents/${drop.agentId}`, details);
      return rows;
    },

    /**
     * A training run: replays experiences with time decay into a new
     * parameters version, published as CURRENT (first) or CANARY. Retries
     * when another replica published a version id first.
     */
    async train(job: { runId?: string; reason?: string; halfLifeMs?: number } = {}): Promise<{
      runId: string;
      version: string;
      experiences: number;
    }> {
      const runId = job.runId || randomUUID();
      const halfLifeMs =
        job.halfLifeMs && job.halfLifeMs > 0 ? job.halfLifeMs : DEFAULT_HALF_LIFE_MS;
      const now = clock();
      // Older than ~13 half-lives weighs < 1e-4 and is skipped by training anyway.
      const since = new Date(now - 13.3 * halfLifeMs);
      const experiences: TrainingExperience[] = [];
      const max = options.maxTrainingExperiences ?? 200_000;
      let last: ExperienceRecord | undefined;
      for (;;) {
        const page = await store.learning.experiencesSince(last ? last.createdAt : since, {
          afterGoalId: last?.goalId,
          limit: 1000,
        });
        for (const e of page) {
          const b = parseBucketKey(e.bucket);
          if (!b) continue;
          experiences.push({
            context: { ...b, text: "" },
            strategy: e.strategy,
            success: e.success,
            latencyMs: e.latencyMs,
            cost: e.cost,
            finishedAt: e.createdAt.getTime(),
          });
        }
        last = page[page.length - 1];
        if (page.length < 1000 || experiences.length >= max) break;
      }
      for (let attempt = 0; ; attempt++) {
        const before = await state.versions();
        const base = currentVersion(before.records);
        const config = base ? (await state.snapshot(base.version)).config : undefined;
        const version = nextVersionId(before.records);
        const params = trainParameters(experiences, { version, runId, now, halfLifeMs, config });
        const after = publishVersion(before.records, {
          version,
          runId,
          createdAt: now,
          canaryFraction: resolveCanaryFraction(await state.flags(), {}),
          note: job.reason ? `trained (${job.reason})` : undefined,
        });
        try {
          await state.saveVersions(before, after, { version, params });
        } catch (err) {
          const raced =
            isMeshError(err) && (err.code === Code.AlreadyExists || err.code === Code.Aborted);
          if (raced && attempt < 3) continue;
          throw err;
        }
        log.info(
          { runId, version, experiences: experiences.length },
          "training published a version",
        );
        await audit("learning.training.completed", `parameters/${version}`, {
          runId,
          version,
          experiences: params.experiences,
          reason: job.reason ?? "",
          state: after.find((v) => v.version === version)?.state ?? "",
        });
        return { runId, version, experiences: params.experiences };
      }
    },

    /** Makes an earlier version CURRENT again (operator); audited. */
    async rollback(version: string, reason: string, actor: string): Promise<VersionRecord> {
      if (!version) throw new MeshError(Code.InvalidArgument, "version is required");
      const before = await state.versions();
      const after = rollbackTo(before.records, version, reason);
      await state.saveVersions(before, after);
      await store.audit
        .append({
          actor,
          action: "learning.parameters.rollback",
          resource: `parameters/${version}`,
          details: { version, reason },
        })
        .catch((err: unknown) => log.warn({ err }, "audit append failed"));
      return after.find((v) => v.version === version)!;
    },
  };
  return engine;
}
