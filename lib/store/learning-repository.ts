/**
 * The learning service's platform-level state: strategy statistics per
 * context bucket, trained parameter versions with their rollout state, agent
 * reliability per capability, and a cross-tenant scan of experiences for
 * training. Counters are updated with single atomic upserts, so replicas can
 * record outcomes concurrently without read-modify-write races.
 *
 * @example
 * await store.learning.recordStrategyOutcome({ bucket, strategy: "solo", success: true,
 *   latencyMs: 840, cost: 0.2, decayHalfLifeMs: 7 * 86_400_000 });
 * await store.learning.recordReliabilityOutcome({ agentId, capability, success: false });
 *
 * The same upserts are CTE builders (`strategyOutcomesCte`, ...), so an
 * experience statement can apply them together with its insert.
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
  /**
   * Decay the existing counts by their age (since the row's `updated_at`) at
   * `at` with this half-life, read and written in the same statement. 0 (the
   * default) means no decay.
   */
  decayHalfLifeMs?: number;
  /** The moment of the outcome, for `decayHalfLifeMs`; default now. */
  at?: Date;
  /** Forgetting per outcome; default none (counts forget only by time). */
  forgetting?: OutcomeForgetting;
}

/**
 * Forgetting per outcome, as the learning domain's `observeWithReset`: the
 * long counts are multiplied by `discount` before the outcome is added, the
 * recent counts by `recentDiscount`; when the recent success rate is `drop`
 * below the long one with at least `minRecent` recent evidence, the long
 * counts are replaced by the recent ones.
 */
export interface OutcomeForgetting {
  discount: number;
  recentDiscount: number;
  drop: number;
  minRecent: number;
}

/** One agent's result for a capability. */
export interface ReliabilityOutcome {
  agentId: string;
  capability: string;
  success: boolean;
  /** Weight of the history; default 0.98. */
  decay?: number;
}

/** @internal Common table expressions and their parameters, to chain into one statement. */
export interface SqlCtes {
  sql: string;
  params: unknown[];
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
  /**
   * Added to the served counts (negative to lower them). Increments, not
   * values: outcomes keep being counted without a revision change, and a
   * value read before them would overwrite them.
   */
  addSuccesses?: number;
  addFailures?: number;
  note?: string;
}

const parametersColumns = {
  state: "state",
  trafficFraction: "traffic_fraction",
  note: "note",
};

export class LearningRepository {
  /** @internal */
  constructor(private readonly db: Db) {}

  /** Adds one outcome to a strategy's statistics (decaying the old counts by their age). */
  async recordStrategyOutcome(input: StrategyOutcome): Promise<StrategyStatsRecord> {
    const ctes = strategyOutcomesCte([input]);
    const [row] = await this.db.mapped<StrategyStatsRecord>(
      StrategyStatsEntity,
      `with ${ctes.sql} select * from strategy_outcomes`,
      ctes.params,
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

  /**
   * Keeps at most `keep` observations' worth of evidence in the statistics of
   * these strategies of a tenant's goal kind (every version and bucket), each
   * row's success rate unchanged: the drift guard's answer to a degraded
   * agent they use. Returns the rows changed.
   */
  async discountStrategyStats(input: {
    tenantId: string;
    goalKind: string;
    strategies: readonly string[];
    keep: number;
  }): Promise<number> {
    if (!(input.keep >= 0)) throw new MeshError(Code.InvalidArgument, "keep must be ≥ 0");
    if (input.strategies.length === 0) return 0;
    const rows = await this.db.rows<{ bucket: string }>(
      `update strategy_stats
       set successes = successes * ? / (successes + failures),
           failures = failures * ? / (successes + failures)
       where tenant_id = ? and goal_kind = ? and strategy = any(?::text[])
         and successes + failures > ?
       returning bucket`,
      [
        input.keep,
        input.keep,
        input.tenantId,
        input.goalKind,
        pgArray(input.strategies),
        input.keep,
      ],
    );
    return rows.length;
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
    for (const [field, column] of [
      ["addSuccesses", "successes"],
      ["addFailures", "failures"],
    ] as const) {
      const add = patch[field];
      if (add === undefined || add === 0) continue;
      if (!Number.isInteger(add))
        throw new MeshError(Code.InvalidArgument, `${field} must be an integer`);
      set.sql.push(`${column} = ${column} + ?`);
      set.params.push(add);
    }
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

  /**
   * Folds one outcome into an agent's reliability for a capability (see
   * `reliabilityOutcomesCte`), mirrored into the agent's `reliability` map.
   */
  async recordReliabilityOutcome(input: ReliabilityOutcome): Promise<AgentReliabilityRecord> {
    const ctes = reliabilityOutcomesCte([input]);
    const [row] = await this.db.mapped<AgentReliabilityRecord>(
      AgentReliabilityEntity,
      `with ${ctes.sql} select * from reliability_outcomes`,
      ctes.params,
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
   * for training. Page with the last row's `createdAt` and `goalId`. The
   * outcome is as stored (sealed for a tenant encrypting at rest, unreadable
   * for an erased one): training reads only the columns kept in clear.
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

/** @internal `serving_parameters`: one row whose `versions` are the CURRENT and CANARY versions (maybe none). */
export const servingParametersCte = `serving_parameters as (
  select coalesce(array_agg(version), '{}') as versions
  from parameter_versions where state in ('CURRENT', 'CANARY'))`;

/** `from` list of an upsert: its input, behind `gate` (a CTE that must return a row) when given. */
const gated = (input: string, gate?: string) => (gate ? `${gate}, ${input}` : input);

/**
 * @internal `strategy_outcomes`: the outcomes added to their statistics rows in
 * one upsert (one outcome per row), each row's old counts decayed by their age
 * at the outcome with the outcome's half-life. With `gate` nothing is written
 * unless that CTE returns a row.
 */
export function strategyOutcomesCte(outcomes: readonly StrategyOutcome[], gate?: string): SqlCtes {
  const keys = new Set<string>();
  const rows = outcomes.map((o) => {
    requireText(o.bucket, "bucket", 512);
    requireText(o.strategy, "strategy", 128);
    const halfLife = o.decayHalfLifeMs ?? 0;
    if (!(halfLife >= 0) || !Number.isFinite(halfLife))
      throw new MeshError(Code.InvalidArgument, "decay half-life must be finite and not negative");
    // No forgetting: discounts of 1 and a drop no rate can reach.
    const f = o.forgetting ?? { discount: 1, recentDiscount: 1, drop: 2, minRecent: 0 };
    if (!(f.discount > 0 && f.discount <= 1 && f.recentDiscount > 0 && f.recentDiscount <= 1))
      throw new MeshError(Code.InvalidArgument, "discounts must be in (0, 1]");
    if (!(f.drop > 0 && f.minRecent >= 0))
      throw new MeshError(Code.InvalidArgument, "drop must be > 0 and minRecent ≥ 0");
    // An upsert may touch a row once.
    const key = `${o.bucket}\u0000${o.strategy}`;
    if (keys.has(key))
      throw new MeshError(Code.InvalidArgument, `two outcomes for ${o.bucket} ${o.strategy}`);
    keys.add(key);
    return {
      bucket: o.bucket,
      strategy: o.strategy,
      tenant_id: o.tenantId ?? null,
      goal_kind: o.goalKind ?? null,
      successes: o.success ? 1 : 0,
      failures: o.success ? 0 : 1,
      latency_ms: o.latencyMs,
      cost: o.cost ?? 0,
      half_life_ms: halfLife,
      at: o.at ?? new Date(),
      discount: f.discount,
      recent_discount: f.recentDiscount,
      reset_drop: f.drop,
      min_recent: f.minRecent,
    };
  });
  // 2^-(age / half-life), as the learning domain's decayFactor; the exponent is
  // clamped where a float8 power would underflow (the weight is ~1e-301 by then).
  const factor = `case when i.half_life_ms > 0 then power(2::float8, greatest(-1000::float8,
    -greatest(0::float8, extract(epoch from (i.at - s.updated_at))::float8 * 1000) / i.half_life_ms))
    else 1::float8 end`;
  return {
    sql: `strategy_input as (
      select * from json_to_recordset(?::json) as i(bucket text, strategy text, tenant_id text,
        goal_kind text, successes float8, failures float8, latency_ms float8, cost float8,
        half_life_ms float8, at timestamptz, discount float8, recent_discount float8, reset_drop float8,
        min_recent float8)),
    strategy_outcomes as (
      insert into strategy_stats as s (bucket, strategy, tenant_id, goal_kind, successes, failures,
        recent_successes, recent_failures, outcomes, latency_sum_ms, cost_sum)
      select i.bucket, i.strategy, i.tenant_id, i.goal_kind, i.successes, i.failures,
        i.successes, i.failures, 1, i.latency_ms, i.cost
      from ${gated("strategy_input i", gate)}
      order by i.bucket, i.strategy
      on conflict (bucket, strategy) do update set
        -- long = decayed by age, discounted, plus the outcome; recent likewise with its own
        -- discount; long := recent when the recent rate fell "drop" below the long one.
        (successes, failures, recent_successes, recent_failures) = (
          select case when d.reset then d.rs else d.ls end, case when d.reset then d.rf else d.lf end,
            d.rs, d.rf
          from (select l.*, l.rs + l.rf >= l.min_recent
                  and l.ls / (l.ls + l.lf) - l.rs / (l.rs + l.rf) >= l.reset_drop as reset
                from (select s.successes * ${factor} * i.discount + excluded.successes as ls,
                        s.failures * ${factor} * i.discount + excluded.failures as lf,
                        s.recent_successes * i.recent_discount + excluded.successes as rs,
                        s.recent_failures * i.recent_discount + excluded.failures as rf,
                        i.reset_drop, i.min_recent
                      from strategy_input i
                      where i.bucket = s.bucket and i.strategy = s.strategy) l) d),
        outcomes = s.outcomes + 1,
        latency_sum_ms = s.latency_sum_ms + excluded.latency_sum_ms,
        cost_sum = s.cost_sum + excluded.cost_sum,
        updated_at = now()
      returning *)`,
    params: [json(rows)],
  };
}

/**
 * @internal `reliability_outcomes`: agents' results folded into their
 * reliability per capability, each a decayed mean
 * `score' = (score·n·decay + outcome) / (n·decay + 1)`, `n' = n·decay + 1`,
 * and mirrored into the agents' `reliability` maps (read by FindAgents). An
 * agent may answer a capability twice (a retry): its results fold in order,
 * as one row update (an upsert may touch a row once). With `gate` nothing is
 * written unless that CTE returns a row.
 */
export function reliabilityOutcomesCte(
  outcomes: readonly ReliabilityOutcome[],
  gate?: string,
): SqlCtes {
  // Folding results o1..ok into (score, n) is n' = n·decayK + weight and
  // score'·n' = score·n·decayK + weighted, with these three accumulated in order.
  const rows = new Map<
    string,
    { agent_id: string; capability: string; decay: number; weight: number; weighted: number }
  >();
  for (const o of outcomes) {
    requireText(o.agentId, "agent id");
    requireText(o.capability, "capability", 128);
    const decay = o.decay ?? 0.98;
    if (!(decay > 0 && decay <= 1))
      throw new MeshError(Code.InvalidArgument, "decay must be in (0, 1]");
    const key = `${o.agentId}\u0000${o.capability}`;
    const row = rows.get(key) ?? {
      agent_id: o.agentId,
      capability: o.capability,
      decay: 1,
      weight: 0,
      weighted: 0,
    };
    row.decay *= decay;
    row.weight = row.weight * decay + 1;
    row.weighted = row.weighted * decay + (o.success ? 1 : 0);
    rows.set(key, row);
  }
  return {
    sql: `reliability_input as (
      select * from json_to_recordset(?::json) as i(agent_id text, capability text, decay float8,
        weight float8, weighted float8)),
    reliability_outcomes as (
      insert into agent_reliability as r (agent_id, capability, score, observations)
      select i.agent_id, i.capability, i.weighted / i.weight, i.weight
      from ${gated("reliability_input i", gate)}
      order by i.agent_id, i.capability
      on conflict (agent_id, capability) do update set
        (score, observations) = (
          select (r.score * r.observations * i.decay + i.weighted) / (r.observations * i.decay + i.weight),
            r.observations * i.decay + i.weight
          from reliability_input i where i.agent_id = r.agent_id and i.capability = r.capability),
        updated_at = now()
      returning *),
    reliability_on_agents as (
      update agents set reliability = agents.reliability || (
        select jsonb_object_agg(r.capability, r.score) from reliability_outcomes r
        where r.agent_id = agents.id)
      where agents.id in (select agent_id from reliability_outcomes))`,
    params: [json([...rows.values()])],
  };
}

/**
 * @internal `parameters_outcome`: counts one outcome observed while a version
 * served. With `gate` nothing is written unless that CTE returns a row.
 */
export function parametersOutcomeCte(
  outcome: { version: string; success: boolean },
  gate?: string,
): SqlCtes {
  return {
    sql: `parameters_outcome as (
      update parameter_versions p
      set successes = p.successes + ?, failures = p.failures + ?, updated_at = now()
      ${gate ? `from ${gate} ` : ""}where p.version = ?)`,
    params: [outcome.success ? 1 : 0, outcome.success ? 0 : 1, outcome.version],
  };
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
