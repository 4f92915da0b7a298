/**
 * The learning service as a gRPC service: thin handlers over the decision
 * loop (`learning-engine.ts`), plus the consumers of the learning stream
 * (outcomes and training jobs) and the training schedule.
 *
 * @example
 * const learning = createLearningService({ store, log, bus, trainingSchedule: "0 3 * * *" });
 * server.add(LearningService, learning.impl);
 * await learning.start(); // bus consumers + cron
 * await learning.stop();
 */
import { randomUUID } from "node:crypto";
import { create, fromJson } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  OutcomeSchema,
  type TrainingJob,
  TrainingJobSchema,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import type { JobBus, Subscription } from "../../lib/bus/index.js";
import { Code, isMeshError, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import type { HandlerContext, ServiceImpl } from "../../lib/rpc/index.js";
import type { ExperienceRecord, Store } from "../../lib/store/index.js";
import { untilStored } from "../../lib/store/until-stored.js";
import {
  type ArmStats,
  addViews,
  armView,
  cosineSimilarity,
  currentVersion,
  type DriftGuardOptions,
  type ParametersSnapshot,
  type Rng,
  resolveFlag,
  SELECTOR_FLAG,
} from "./domain/index.js";
import { createLearningEngine, similarityVector } from "./learning-engine.js";
import { toVersion, untrainedVersion } from "./learning-state.js";
import { startTrainingScheduler, type TrainingScheduler } from "./training-scheduler.js";
import {
  chooseResultToMessage,
  reliabilityToMessage,
  strategyStatsMessages,
  trainingHalfLifeMs,
  versionToMessage,
} from "./wire.js";

export interface LearningServiceDeps {
  store: Store;
  log: Logger;
  /** Job bus; with it outcomes and training jobs are consumed from the learning stream and TriggerTraining publishes. */
  bus?: JobBus;
  /** Cron expression of scheduled training (UTC); default nightly "0 3 * * *"; `false` disables it. */
  trainingSchedule?: string | false;
  /** Default `Date.now`. */
  clock?: () => number;
  /** Selector randomness; default seeded randomly. */
  rng?: Rng;
  /** Run the drift guard every this many outcomes per replica; default 25. */
  driftEvery?: number;
  /** Drift guard thresholds; default 95% / margin 0.02 / 30 canary outcomes. */
  drift?: DriftGuardOptions;
  /**
   * Outcomes delivered and not yet recorded per replica; default 64. The
   * outcomes waiting together are recorded in one statement (at most
   * `maxOutcomeBatch`, default 64), so this bounds the batch size.
   */
  outcomeConcurrency?: number;
  /** Most outcomes recorded in one statement; default 64. */
  maxOutcomeBatch?: number;
}

export interface LearningServiceHandle {
  impl: ServiceImpl<typeof LearningService>;
  /** Starts the bus consumers (when a bus is given) and the training schedule. */
  start(): Promise<void>;
  /** Stops them and waits for inline training runs. */
  stop(): Promise<void>;
  /** The engine behind the handlers (tests, admin tooling). */
  engine: ReturnType<typeof createLearningEngine>;
}

export function createLearningService(deps: LearningServiceDeps): LearningServiceHandle {
  const { store, log, bus } = deps;
  const clock = deps.clock ?? Date.now;
  const engine = createLearningEngine({
    store,
    log,
    clock,
    rng: deps.rng,
    driftEvery: deps.driftEvery,
    drift: deps.drift,
    maxOutcomeBatch: deps.maxOutcomeBatch,
  });
  const subscriptions: Subscription[] = [];
  /** Aborted at stop: outcomes waiting for the database go back to the stream. */
  const stopping = new AbortController();
  const inline = new Set<Promise<unknown>>();
  let scheduler: TrainingScheduler | undefined;

  /** Publishes a training job, or runs it in the background when there is no bus. */
  const triggerTraining = async (reason: string): Promise<string> => {
    const runId = randomUUID();
    if (bus) {
      await bus.publishTraining(
        create(TrainingJobSchema, { runId, reason, requestedAt: timestampFromMs(clock()) }),
      );
      return runId;
    }
    const run = engine
      .train({ runId, reason })
      .catch((err: unknown) => log.error({ err, runId }, "training run failed"))
      .finally(() => inline.delete(run));
    inline.add(run);
    return runId;
  };

  const runTrainingJob = async (job: TrainingJob, working: () => void) => {
    const keepAlive = setInterval(working, 5000);
    try {
      await engine.train({
        runId: job.runId,
        reason: job.reason,
        halfLifeMs: trainingHalfLifeMs(job),
      });
    } finally {
      clearInterval(keepAlive);
    }
  };

  const actor = (ctx: HandlerContext) =>
    ctx.principal ? `${ctx.principal.tenantId}/${ctx.principal.subject}` : ctx.peer.spiffeId;

  const impl: ServiceImpl<typeof LearningService> = {
    async chooseStrategy(req) {
      return chooseResultToMessage(
        await engine.choose({
          context: req.context,
          candidates: req.candidates,
          goalId: req.goalId,
        }),
      );
    },

    async recordOutcome(req) {
      return { recorded: await engine.record(req.outcome) };
    },

    async getStrategyStats(req) {
      const now = clock();
      const [versions, flags] = await Promise.all([
        store.learning.listParameters({ limit: 50 }),
        engine.state.flags(),
      ]);
      const { records } = await engine.state.versions();
      const version = currentVersion(records)?.version ?? untrainedVersion;
      const snapshot = await engine.state.snapshot(version);
      const scope = { tenantId: req.tenantId || undefined, goalKind: req.goalKind || undefined };
      const merged: ParametersSnapshot = { ...snapshot, buckets: { ...snapshot.buckets } };
      for (const [bucket, rows] of await engine.state.online(version, scope)) {
        const trained = merged.buckets[bucket] ?? {};
        const out: Record<string, ArmStats> = { ...trained };
        for (const [strategy, row] of Object.entries(rows)) {
          const v = addViews(
            armView(trained[strategy], now, snapshot.halfLifeMs),
            armView(row, now, snapshot.halfLifeMs),
          );
          out[strategy] = { ...v, updatedAt: now };
        }
        merged.buckets[bucket] = out;
      }
      const selector =
        resolveFlag(flags, SELECTOR_FLAG, { tenantId: req.tenantId, goalKind: req.goalKind })
          ?.value ?? snapshot.config.selector;
      return {
        strategies: strategyStatsMessages(merged, now, scope),
        versions: versions.map((r) => versionToMessage(toVersion(r))),
        selector,
      };
    },

    async triggerTraining(req, ctx) {
      const runId = await triggerTraining(req.reason || "manual");
      await store.audit
        .append({
          actor: actor(ctx),
          action: "learning.training.triggered",
          resource: `training/${runId}`,
          details: { reason: req.reason.slice(0, 500) },
        })
        .catch((err: unknown) => log.warn({ err }, "audit append failed"));
      return { runId };
    },

    async listExperiences(req) {
      if (!req.tenantId) throw new MeshError(Code.InvalidArgument, "tenant_id is required");
      const size = req.pageSize === 0 ? 50 : Math.min(req.pageSize, 500);
      const repo = store.tenant(req.tenantId).experiences;
      if (!req.similarTo) {
        const page = await repo.list({
          goalKind: req.goalKind || undefined,
          pageSize: size,
          pageToken: req.pageToken || undefined,
        });
        return {
          experiences: page.experiences.map((e) => experienceMessage(e, 0)),
          nextPageToken: page.nextPageToken,
        };
      }
      // Similarity ranks the most recent 500 experiences; one page, no token.
      const query = similarityVector({
        tenantId: req.tenantId,
        goalKind: req.goalKind,
        sizeClass: "",
        text: req.similarTo,
      });
      const { experiences } = await repo.list({
        goalKind: req.goalKind || undefined,
        pageSize: 500,
      });
      const ranked = experiences
        .map((e) => ({ e, similarity: cosineSimilarity(query, e.features) }))
        .sort((a, b) => b.similarity - a.similarity)
        .slice(0, size);
      return {
        experiences: ranked.map(({ e, similarity }) => experienceMessage(e, similarity)),
        nextPageToken: "",
      };
    },

    async getAgentReliability(req) {
      const rows = await store.learning.listReliability({
        capability: req.capability || undefined,
        agentIds: req.agentIds.length > 0 ? [...req.agentIds] : undefined,
      });
      return {
        scores: rows.map((r) =>
          reliabilityToMessage({
            agentId: r.agentId,
            capability: r.capability,
            score: r.score,
            observations: r.observations,
          }),
        ),
      };
    },

    async rollbackParameters(req, ctx) {
      const current = await engine.rollback(req.version, req.reason, actor(ctx));
      return { current: versionToMessage(current) };
    },
  };

  /** Whether `err` refused an outcome because its tenant's keys were erased. */
  const fromErasedTenant = async (err: unknown, tenantId: string | undefined) =>
    isMeshError(err) &&
    err.code === Code.FailedPrecondition &&
    tenantId !== undefined &&
    tenantId !== "" &&
    (await store.tenants.protection(tenantId).then(
      (p) => p.erasedAt !== null,
      () => false,
    ));

  return {
    impl,
    engine,
    async start() {
      if (bus) {
        subscriptions.push(
          await bus.consumeOutcomes({
            concurrency: deps.outcomeConcurrency ?? 64,
            handler: async (d) => {
              try {
                // A database outage is waited out here, not spent on redeliveries
                // that would end in the dead letters (kept for poison messages).
                await untilStored(() => engine.record(d.data), {
                  working: () => d.working(),
                  signal: stopping.signal,
                  log,
                });
                d.ack();
              } catch (err) {
                // An erased tenant's outcome is not learned from, nor kept in the dead letters.
                if (await fromErasedTenant(err, d.data.context?.tenantId)) {
                  log.info({ goalId: d.data.goalId }, "outcome of an erased tenant dropped");
                  d.ack();
                  return;
                }
                // A malformed outcome never becomes valid: drop it to the dead letters.
                if (isMeshError(err) && err.code === Code.InvalidArgument) {
                  log.warn({ err, goalId: d.data.goalId }, "invalid outcome dead-lettered");
                  await d.deadLetter(err.message);
                  return;
                }
                throw err;
              }
            },
          }),
          await bus.consumeTraining({
            handler: async (d) => {
              await runTrainingJob(d.data, () => d.working());
              d.ack();
            },
          }),
        );
      }
      if (deps.trainingSchedule !== false) {
        scheduler = startTrainingScheduler({
          store,
          log,
          schedule: deps.trainingSchedule,
          clock,
          trigger: triggerTraining,
        });
      }
    },
    async stop() {
      stopping.abort();
      scheduler?.stop();
      await Promise.all(subscriptions.splice(0).map((s) => s.stop({ graceMs: 5000 })));
      await Promise.all([...inline]);
    },
  };
}

function experienceMessage(e: ExperienceRecord, similarity: number) {
  const outcome = fromJson(OutcomeSchema, e.outcome, { ignoreUnknownFields: true });
  return { goalId: e.goalId, outcome, similarity };
}
