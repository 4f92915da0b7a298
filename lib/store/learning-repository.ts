/**
 * The learning service's platform-level state: strategy statistics per
 * context bucket, trained parameter versions with their rollout state, agent
 * reliability per capability, and a cross-tenant scan of experiences for
 * training. Counters are updated with single atomic upserts, so replicas can
 * record outcomes concurrently without read-modify-write races.
 *
 * @example
 * await store.learning.recordStrategyOutcome({ bucket, strategy: "solo", success: true,
 *   latencyMs: 840, cost: 0.2, decay: 0.999 });
 * await store.learning.recordReliabilityOutcome({ agentId, capability, success: false });
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import { assignments, constraintOf, type Db, json, pgArray, requireText } from "./db.js";
import {
  AgentReliabilityEntity,
  ExperienceEntity,
  ParametersVersionEntity,
  StrategyStatsEntity,
} from "./entities.js";
import type {
  AgentReliabilityRecord,
  ExperienceRecord,
  ParametersStateName,
  ParametersVersionRecord,
  StrategyStatsRecord,
} from "./records.js";

export interface StrategyOutcome {
  bucket: string;
  strategy: string;
  tenantId?: string;
  goalKind?: string;
  success: boolean;
  latencyMs: number;
  cost?: number;
  /** Factor applied to the existing success and failure counts first; default 1 (no decay). */
  decay?: number;
  /**
   * Instead of `decay`: decay the existing counts by their age (since the
   * row's `updated_at`) at `at` with this half-life, read and written in the
   * same statement. 0 means no decay.
   */
  decayHalfLifeMs?: number;
  /** The moment of the outcome, for `decayHalfLifeMs`; default now. */
  at?: Date;
}

export interface NewParametersVersion {
  version: string;
  state: ParametersStateName;
  params: JsonObject;
  trafficFraction?: number;
  runId?: string;
  note?: string;
}

export interface ParametersPatch {
  state?: ParametersStateName;
  trafficFraction?: number;
  successes?: number;
  failures?: number;
  note?: string;
}

const parametersColumns = {
  state: "state",
  trafficFraction: "traffic_fraction",
  successes: "successes",
  failures: "failures",
  note: "note",
};

export class LearningRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Adds one outcome to a strategy's statistics (decaying the old counts by `decay`). */
  async recordStrategyOutcome(input: StrategyOutcome): Promise<StrategyStatsRecord> {
    requireText(input.bucket, "bucket", 512);
    requireText(input.strategy, "strategy", 128);
    const decay = input.decay ?? 1;
    if (!(decay > 0 && decay <= 1))
      throw new MeshError(Code.InvalidArgument, "decay must be in (0, 1]");
    const halfLife = input.decayHalfLifeMs ?? 0;
    if (!(halfLife >= 0) || !Number.isFinite(halfLife))
      throw new MeshError(Code.InvalidArgument, "decay half-life must be finite and not negative");
    // 2^-(age / half-life), as the learning domain's decayFactor; the exponent is
    // clamped where a float8 power would underflow (the weight is ~1e-301 by then).
    const factor = `(case when ?::float8 > 0 then power(2::float8, greatest(-1000::float8,
         -greatest(0::float8, extract(epoch from (?::timestamptz - s.updated_at))::float8 * 1000) / ?::float8))
         else ?::float8 end)`;
    const factorParams = [halfLife, input.at ?? new Date(), halfLife, decay];
    const [row] = await this.db.mapped<StrategyStatsRecord>(
      StrategyStatsEntity,
      `insert into strategy_stats as s (bucket, strategy, tenant_id, goal_kind, successes, failures,
         outcomes, latency_sum_ms, cost_sum)
       values (?, ?, ?, ?, ?, ?, 1, ?, ?)
       on conflict (bucket, strategy) do update set
         successes = s.successes * ${factor} + excluded.successes,
         failures = s.failures * ${factor} + excluded.failures,
         outcomes = s.outcomes + 1,
         latency_sum_ms = s.latency_sum_ms + excluded.latency_sum_ms,
         cost_sum = s.cost_sum + excluded.cost_sum,
         updated_at = now()
       returning *`,
      [
        input.bucket,
        input.strategy,
        input.tenantId ?? null,
        input.goalKind ?? null,
        input.success ? 1 : 0,
        input.success ? 0 : 1,
        input.latencyMs,
        input.cost ?? 0,
        ...factorParams,
        ...factorParams,
      ],
    );
    return row as StrategyStatsRecord;
  }

  /** Counts one choice of a strategy in a bucket. */
  async recordPull(input: {
    bucket: string;
    strategy: string;
    tenantId?: string;
    goalKind?: string;
  }): Promise<void> {
    await this.db.rows(
      `insert into strategy_stats as s (bucket, strategy, tenant_id, goal_kind, pulls) values (?, ?, ?, ?, 1)
       on conflict (bucket, strategy) do update set pulls = s.pulls + 1, updated_at = now()`,
      [input.bucket, input.strategy, input.tenantId ?? null, input.goalKind ?? null],
    );
  }

  /** Statistics, optionally of one tenant and/or goal kind, by bucket and strategy. */
  async strategyStats(
    options: { tenantId?: string; goalKind?: string } = {},
  ): Promise<StrategyStatsRecord[]> {
    const where = ["true"];
    const params: unknown[] = [];
    if (options.tenantId) {
      where.push("tenant_id = ?");
      params.push(options.tenantId);
    }
    if (options.goalKind) {
      where.push("goal_kind = ?");
      params.push(options.goalKind);
    }
    return this.db.mapped<StrategyStatsRecord>(
      StrategyStatsEntity,
      `select * from strategy_stats where ${where.join(" and ")} order by bucket, strategy`,
      params,
    );
  }

  /** Stores a new parameter version. ALREADY_EXISTS if the version exists; FAILED_PRECONDITION if its state is CURRENT or CANARY and another one already is. */
  async createParameters(input: NewParametersVersion): Promise<ParametersVersionRecord> {
    requireText(input.version, "version", 64);
    try {
      const [row] = await this.db.mapped<ParametersVersionRecord>(
        ParametersVersionEntity,
        `insert into parameter_versions (version, state, params, traffic_fraction, run_id, note)
         values (?, ?, ?::jsonb, ?, ?, ?) returning *`,
        [
          input.version,
          input.state,
          json(input.params),
          input.trafficFraction ?? 0,
          input.runId ?? "",
          input.note ?? "",
        ],
      );
      return row as ParametersVersionRecord;
    } catch (err) {
      throw parametersError(err, input.version);
    }
  }

  /** The version, or NOT_FOUND. */
  async getParameters(version: string): Promise<ParametersVersionRecord> {
    const [row] = await this.db.mapped<ParametersVersionRecord>(
      ParametersVersionEntity,
      "select * from parameter_versions where version = ?",
      [version],
    );
    if (!row) throw new MeshError(Code.NotFound, `parameters version ${version} not found`);
    return row;
  }

  /** Versions, newest first. */
  async listParameters(options: { limit?: number } = {}): Promise<ParametersVersionRecord[]> {
    return this.db.mapped<ParametersVersionRecord>(
      ParametersVersionEntity,
      "select * from parameter_versions order by created_at desc, version desc limit ?",
      [options.limit ?? 50],
    );
  }

  /** The CURRENT and CANARY versions, if any. */
  async activeParameters(): Promise<{
    current?: ParametersVersionRecord;
    canary?: ParametersVersionRecord;
  }> {
    const rows = await this.db.mapped<ParametersVersionRecord>(
      ParametersVersionEntity,
      "select * from parameter_versions where state in ('CURRENT','CANARY')",
    );
    return {
      current: rows.find((r) => r.state === "CURRENT"),
      canary: rows.find((r) => r.state === "CANARY"),
    };
  }

  /** Applies `patch` if the version is still at `expectedRevision`; ABORTED otherwise. */
  async updateParameters(
    version: string,
    expectedRevision: number,
    patch: ParametersPatch,
  ): Promise<ParametersVersionRecord> {
    const set = assignments(patch, parametersColumns);
    let row: ParametersVersionRecord | undefined;
    try {
      [row] = await this.db.mapped<ParametersVersionRecord>(
        ParametersVersionEntity,
        `update parameter_versions set ${[...set.sql, "revision = revision + 1", "updated_at = now()"].join(", ")}
         where version = ? and revision = ? returning *`,
        [...set.params, version, expectedRevision],
      );
    } catch (err) {
      throw parametersError(err, version);
    }
    if (row) return row;
    const current = await this.getParameters(version);
    throw new MeshError(
      Code.Aborted,
      `parameters ${version} were changed concurrently (expected revision ${expectedRevision}, found ${current.revision})`,
      { details: { version, expectedRevision, actualRevision: current.revision } },
    );
  }

  /** Counts one outcome observed while a version served. */
  async recordParametersOutcome(version: string, success: boolean): Promise<void> {
    const rows = await this.db.rows(
      `update parameter_versions set successes = successes + ?, failures = failures + ?, updated_at = now()
       where version = ? returning version`,
      [success ? 1 : 0, success ? 0 : 1, version],
    );
    if (rows.length === 0)
      throw new MeshError(Code.NotFound, `parameters version ${version} not found`);
  }

  /**
   * Folds one outcome into an agent's reliability for a capability: a decayed
   * mean, `score' = (score·n·decay + outcome) / (n·decay + 1)`, mirrored into
   * the agent's `reliability` map for discovery.
   */
  async recordReliabilityOutcome(input: {
    agentId: string;
    capability: string;
    success: boolean;
    /** Weight of the history; default 0.98. */
    decay?: number;
  }): Promise<AgentReliabilityRecord> {
    requireText(input.agentId, "agent id");
    requireText(input.capability, "capability", 128);
    const decay = input.decay ?? 0.98;
    if (!(decay > 0 && decay <= 1))
      throw new MeshError(Code.InvalidArgument, "decay must be in (0, 1]");
    const outcome = input.success ? 1 : 0;
    // One statement: the score, and its copy on the agent's row (read by FindAgents).
    const [row] = await this.db.mapped<AgentReliabilityRecord>(
      AgentReliabilityEntity,
      `with r as (
         insert into agent_reliability as r (agent_id, capability, score, observations)
         values (?, ?, ?, 1)
         on conflict (agent_id, capability) do update set
           score = (r.score * r.observations * ? + excluded.score) / (r.observations * ? + 1),
           observations = r.observations * ? + 1,
           updated_at = now()
         returning *),
       a as (
         update agents set reliability = jsonb_set(reliability, array[r.capability], to_jsonb(r.score))
         from r where agents.id = r.agent_id)
       select * from r`,
      [input.agentId, input.capability, outcome, decay, decay, decay],
    );
    return row as AgentReliabilityRecord;
  }

  /** Reliability rows, optionally of one capability and/or some agents. */
  async listReliability(
    options: { capability?: string; agentIds?: string[] } = {},
  ): Promise<AgentReliabilityRecord[]> {
    const where = ["true"];
    const params: unknown[] = [];
    if (options.capability) {
      where.push("capability = ?");
      params.push(options.capability);
    }
    if (options.agentIds?.length) {
      where.push("agent_id = any(?::text[])");
      params.push(pgArray(options.agentIds));
    }
    return this.db.mapped<AgentReliabilityRecord>(
      AgentReliabilityEntity,
      `select * from agent_reliability where ${where.join(" and ")} order by capability, score desc`,
      params,
    );
  }

  /**
   * Experiences of every tenant recorded at or after `since`, oldest first,
   * for training. Page with the last row's `createdAt` and `goalId`.
   */
  async experiencesSince(
    since: Date,
    options: { afterGoalId?: string; limit?: number } = {},
  ): Promise<ExperienceRecord[]> {
    return this.db.mapped<ExperienceRecord>(
      ExperienceEntity,
      `select * from experiences where (created_at, goal_id) > (?, ?)
       order by created_at, goal_id limit ?`,
      [since, options.afterGoalId ?? "", options.limit ?? 1000],
    );
  }
}

function parametersError(err: unknown, version: string): unknown {
  const constraint = constraintOf(isMeshError(err) ? err.cause : err);
  if (constraint === "parameter_versions_pkey") {
    return new MeshError(Code.AlreadyExists, `parameters version ${version} exists`, {
      cause: err,
    });
  }
  if (constraint === "parameter_versions_one_current") {
    return new MeshError(
      Code.FailedPrecondition,
      "another parameters version is already in that state (retire it first)",
      { cause: err },
    );
  }
  return err;
}
