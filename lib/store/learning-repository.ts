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
 * experience statement can apply them together with its insert:
 * `recordOutcomes` records a batch of outcomes in one statement, each hot row
 * (a bucket's strategy, an agent's capability) written once per batch.
 *
 * const e = await store.tenant(t).experiences.prepare({ goalId, goalKind, bucket, ... });
 * const answer = await store.learning.recordOutcomes(["v3"], [{ experience: e,
 *   strategy: [{ bucket: "v3|...", ... }], reliability: [...] }]);
 * if (answer.status === "stale") retryWith(answer.servingVersions);
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
  /** @internal The goal whose recorded experience this counts with (`recordOutcomes`). */
  goalId?: string;
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
  /** @internal The goal whose recorded experience this counts with (`recordOutcomes`). */
  goalId?: string;
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
    await this.recordPulls([input]);
  }

  /**
   * Counts choices of strategies in buckets in one statement: each
   * (bucket, strategy) row once, by the number of its choices in `pulls`.
   */
  async recordPulls(
    pulls: readonly { bucket: string; strategy: string; tenantId?: string; goalKind?: string }[],
  ): Promise<void> {
    // One row per (bucket, strategy): an upsert may not touch a row twice.
    const rows = new Map<
      string,
      {
        bucket: string;
        strategy: string;
        tenant_id: string | null;
        goal_kind: string | null;
        pulls: number;
      }
    >();
    for (const p of pulls) {
      const key = `${p.bucket}\u0000${p.strategy}`;
      const row = rows.get(key);
      if (row) row.pulls++;
      else {
        rows.set(key, {
          bucket: p.bucket,
          strategy: p.strategy,
          tenant_id: p.tenantId ?? null,
          goal_kind: p.goalKind ?? null,
          pulls: 1,
        });
      }
    }
    if (rows.size === 0) return;
    // In key order, so two statements lock shared rows in the same order.
    await this.db.rows(
      `insert into strategy_stats as s (bucket, strategy, tenant_id, goal_kind, pulls)
       select i.bucket, i.strategy, i.tenant_id, i.goal_kind, i.pulls
       from json_to_recordset(?::json) as i(bucket text, strategy text, tenant_id text,
         goal_kind text, pulls bigint)
       order by i.bucket, i.strategy
       on conflict (bucket, strategy) do update set pulls = s.pulls + excluded.pulls, updated_at = now()`,
      [json([...rows.values()])],
    );
  }

  /**
   * Statistics, optionally of one bucket (its primary key's prefix), tenant
   * and/or goal kind, by bucket and strategy.
   */
  async strategyStats(
    options: { bucket?: string; tenantId?: string; goalKind?: string } = {},
  ): Promise<StrategyStatsRecord[]> {
    const where = ["true"];
    const params: unknown[] = [];
    if (options.bucket !== undefined) {
      where.push("bucket = ?");
      params.push(options.bucket);
    }
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

  /**
   * Records outcomes in one statement (see `recordOutcomes`): each goal's
   * experience once, and the statistics of the ones recorded. At most one
   * outcome per goal; NOT_FOUND for an unknown tenant.
   */
  recordOutcomes(
    servingVersions: readonly string[],
    outcomes: readonly BatchOutcome[],
  ): Promise<OutcomeBatchRecording> {
    return recordOutcomes(this.db, servingVersions, outcomes);
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

/**
 * `where` of a batch's steps (alias `i`): with `gate`, a CTE returning the
 * `goal_id`s whose experience the statement recorded, only those goals count.
 */
const gatedSteps = (gate?: string) =>
  gate ? `where i.goal_id in (select goal_id from ${gate})` : "";

/**
 * @internal `strategy_outcomes`: outcomes folded into their statistics rows in
 * one upsert that updates each row once, however many outcomes it gets. In
 * order, each outcome decays the row's counts by their age with its
 * half-life (the first from the row's `updated_at`, later ones from the
 * statement's time), discounts them, adds itself, and replaces the long
 * counts by the recent ones on a drop: what one statement per outcome would
 * leave. With `gate`, only outcomes whose `goalId` the gate returns count.
 */
export function strategyOutcomesCte(outcomes: readonly StrategyOutcome[], gate?: string): SqlCtes {
  const rows = outcomes.map((o, ord) => {
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
    return {
      ord,
      goal_id: o.goalId ?? null,
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
  // The counts after the steps of `row`'s bucket and strategy, from `seed`.
  // Each step: 2^-(age / half-life), as the learning domain's decayFactor (the
  // exponent clamped where a float8 power would underflow: the weight is
  // ~1e-301 by then); long = decayed, discounted, plus the outcome; recent
  // likewise with its own discount; long := recent when the recent rate fell
  // "drop" below the long one.
  const fold = (row: string, seed: string, seedUpdatedAt: string) => `
    with recursive fold (k, ls, lf, rs, rf) as (
      select 0::bigint, ${seed}
      union all
      select st.k, case when r.reset then l.rs else l.ls end, case when r.reset then l.rf else l.lf end,
        l.rs, l.rf
      from fold join strategy_steps st
        on st.bucket = ${row}.bucket and st.strategy = ${row}.strategy and st.k = fold.k + 1
      cross join lateral (select case when st.half_life_ms > 0 then power(2::float8,
          greatest(-1000::float8, -greatest(0::float8, extract(epoch from (st.at -
            case when fold.k = 0 then ${seedUpdatedAt} else now() end))::float8 * 1000)
            / st.half_life_ms)) else 1::float8 end as factor) d
      cross join lateral (select fold.ls * d.factor * st.discount + st.successes as ls,
          fold.lf * d.factor * st.discount + st.failures as lf,
          fold.rs * st.recent_discount + st.successes as rs,
          fold.rf * st.recent_discount + st.failures as rf) l
      cross join lateral (select l.rs + l.rf >= st.min_recent
          and l.ls / (l.ls + l.lf) - l.rs / (l.rs + l.rf) >= st.reset_drop as reset) r)
    select ls, lf, rs, rf from fold order by k desc limit 1`;
  return {
    sql: `strategy_input as (
      select * from json_to_recordset(?::json) as i(ord int, goal_id text, bucket text, strategy text,
        tenant_id text, goal_kind text, successes float8, failures float8, latency_ms float8, cost float8,
        half_life_ms float8, at timestamptz, discount float8, recent_discount float8, reset_drop float8,
        min_recent float8)),
    strategy_steps as (
      select i.*, row_number() over (partition by i.bucket, i.strategy order by i.ord) as k
      from strategy_input i ${gatedSteps(gate)}),
    strategy_outcomes as (
      insert into strategy_stats as s (bucket, strategy, tenant_id, goal_kind, successes, failures,
        recent_successes, recent_failures, outcomes, latency_sum_ms, cost_sum)
      select b.bucket, b.strategy, b.tenant_id, b.goal_kind, f.ls, f.lf, f.rs, f.rf, b.outcomes,
        b.latency_sum_ms, b.cost_sum
      from (select bucket, strategy, min(tenant_id) as tenant_id, min(goal_kind) as goal_kind,
              count(*) as outcomes, sum(latency_ms) as latency_sum_ms, sum(cost) as cost_sum
            from strategy_steps group by bucket, strategy) b
      cross join lateral (${fold("b", "0::float8, 0::float8, 0::float8, 0::float8", "now()")}) f
      order by b.bucket, b.strategy
      on conflict (bucket, strategy) do update set
        (successes, failures, recent_successes, recent_failures) = (${fold(
          "s",
          "s.successes, s.failures, s.recent_successes, s.recent_failures",
          "s.updated_at",
        )}),
        outcomes = s.outcomes + excluded.outcomes,
        latency_sum_ms = s.latency_sum_ms + excluded.latency_sum_ms,
        cost_sum = s.cost_sum + excluded.cost_sum,
        updated_at = now()
      returning *)`,
    params: [json(rows)],
  };
}

/**
 * How far an agent's mirrored score (`agents.reliability`) may lag its
 * reliability row before a recorded outcome rewrites the agent's row: an
 * agent that keeps succeeding (score 1) costs no agents write per outcome.
 */
export const RELIABILITY_MIRROR_TOLERANCE = 0.001;

/**
 * @internal `reliability_outcomes`: agents' results folded into their
 * reliability per capability, each a decayed mean
 * `score' = (score·n·decay + outcome) / (n·decay + 1)`, `n' = n·decay + 1`,
 * one row update per agent and capability however many results it gets (they
 * fold in order, as one at a time would: a retry, or several outcomes of a
 * batch), and mirrored into the agents' `reliability` maps (read by
 * FindAgents when learning cannot answer) when a score moved by at least
 * `RELIABILITY_MIRROR_TOLERANCE`. With `gate`, only results whose `goalId`
 * the gate returns count.
 */
export function reliabilityOutcomesCte(
  outcomes: readonly ReliabilityOutcome[],
  gate?: string,
): SqlCtes {
  const rows = outcomes.map((o, ord) => {
    requireText(o.agentId, "agent id");
    requireText(o.capability, "capability", 128);
    const decay = o.decay ?? 0.98;
    if (!(decay > 0 && decay <= 1))
      throw new MeshError(Code.InvalidArgument, "decay must be in (0, 1]");
    return {
      ord,
      goal_id: o.goalId ?? null,
      agent_id: o.agentId,
      capability: o.capability,
      decay,
      success: o.success ? 1 : 0,
    };
  });
  // Folding results o1..ok into (score, n) is n' = n·decayK + weight and
  // score'·n' = score·n·decayK + weighted, with these three accumulated in order.
  return {
    sql: `reliability_input as (
      select * from json_to_recordset(?::json) as i(ord int, goal_id text, agent_id text,
        capability text, decay float8, success float8)),
    reliability_steps as (
      select i.*, row_number() over (partition by i.agent_id, i.capability order by i.ord) as k
      from reliability_input i ${gatedSteps(gate)}),
    reliability_folded as (
      select a.agent_id, a.capability, f.decay, f.weight, f.weighted
      from (select distinct agent_id, capability from reliability_steps) a
      cross join lateral (
        with recursive fold (k, decay, weight, weighted) as (
          select 0::bigint, 1::float8, 0::float8, 0::float8
          union all
          select st.k, fold.decay * st.decay, fold.weight * st.decay + 1,
            fold.weighted * st.decay + st.success
          from fold join reliability_steps st on st.agent_id = a.agent_id
            and st.capability = a.capability and st.k = fold.k + 1)
        select decay, weight, weighted from fold order by k desc limit 1) f),
    reliability_outcomes as (
      insert into agent_reliability as r (agent_id, capability, score, observations)
      select i.agent_id, i.capability, i.weighted / i.weight, i.weight
      from reliability_folded i
      order by i.agent_id, i.capability
      on conflict (agent_id, capability) do update set
        (score, observations) = (
          select (r.score * r.observations * i.decay + i.weighted) / (r.observations * i.decay + i.weight),
            r.observations * i.decay + i.weight
          from reliability_folded i where i.agent_id = r.agent_id and i.capability = r.capability),
        updated_at = now()
      returning *),
    reliability_on_agents as (
      update agents set reliability = agents.reliability || m.scores
      from (select agent_id, jsonb_object_agg(capability, score) as scores
            from reliability_outcomes group by agent_id) m
      where agents.id = m.agent_id and exists (
        select from jsonb_each(m.scores) e
        where abs(coalesce((agents.reliability ->> e.key)::float8, -1) - e.value::float8)
          >= ${RELIABILITY_MIRROR_TOLERANCE}))`,
    params: [json(rows)],
  };
}

/**
 * @internal `parameters_outcome`: counts outcomes observed while a version
 * served, one update per version. With `gate`, only outcomes whose `goalId`
 * the gate returns count.
 */
export function parametersOutcomesCte(
  outcomes: readonly { version: string; success: boolean; goalId?: string }[],
  gate?: string,
): SqlCtes {
  return {
    sql: `parameters_input as (
      select * from json_to_recordset(?::json) as i(goal_id text, version text, success boolean)),
    parameters_outcome as (
      update parameter_versions p
      set successes = p.successes + c.successes, failures = p.failures + c.failures,
        updated_at = now()
      from (select i.version, count(*) filter (where i.success) as successes,
              count(*) filter (where not i.success) as failures
            from parameters_input i ${gatedSteps(gate)} group by i.version) c
      where p.version = c.version)`,
    params: [
      json(
        outcomes.map((o) => ({
          goal_id: o.goalId ?? null,
          version: o.version,
          success: o.success,
        })),
      ),
    ],
  };
}

/**
 * @internal The columns of an experience row as `recordOutcomes` reads it
 * from JSON (`ExperienceRepository.prepare` builds the rows).
 */
export const experienceRowType = `goal_id text, tenant_id text, goal_kind text, bucket text,
  strategy text, parameters_version text, success boolean, latency_ms float8, cost float8,
  features real[], outcome jsonb, created_at timestamptz, signature bigint, lsh_bands int[]`;

const experienceRowColumns = `goal_id, tenant_id, goal_kind, bucket, strategy, parameters_version,
  success, latency_ms, cost, features, outcome, created_at, signature, lsh_bands`;

/**
 * An experience ready to insert: validated, and its outcome sealed as its
 * tenant stores it (`store.tenant(t).experiences.prepare`).
 */
export interface PreparedExperience {
  readonly tenantId: string;
  readonly goalId: string;
  /** @internal The row, keyed by column (`experienceRowType`). */
  readonly row: Readonly<Record<string, unknown>>;
}

/** One outcome of `recordOutcomes`: its experience and what it adds to the statistics. */
export interface BatchOutcome {
  experience: PreparedExperience;
  /** One outcome per statistics row: a row per serving version. */
  strategy: readonly StrategyOutcome[];
  /** The choosing version's serving count, when that version serves. */
  parameters?: { version: string; success: boolean };
  /** Every agent result, in order. */
  reliability: readonly ReliabilityOutcome[];
}

/**
 * How `recordOutcomes` went: done, with whether each outcome was recorded
 * (false: its goal already had an experience, this tenant's or another's);
 * or not attempted because other versions serve than the caller said
 * (nothing changed; redo it with these).
 */
export type OutcomeBatchRecording =
  | { status: "done"; recorded: boolean[] }
  | { status: "stale"; servingVersions: string[] };

/**
 * @internal One statement recording outcomes: inserts the experiences (once
 * per goal) and folds the ones it inserted, in order, into the statistics of
 * every serving version, the serving counts and agent reliability, each row
 * written once. Nothing at all is written unless exactly `servingVersions`
 * serve when the statement runs.
 */
export async function recordOutcomes(
  db: Db,
  servingVersions: readonly string[],
  outcomes: readonly BatchOutcome[],
): Promise<OutcomeBatchRecording> {
  const goals = new Set<string>();
  for (const o of outcomes) {
    // An insert that skipped a goal's second row would still count both.
    if (goals.has(o.experience.goalId)) {
      throw new MeshError(Code.InvalidArgument, `two outcomes of goal ${o.experience.goalId}`);
    }
    goals.add(o.experience.goalId);
  }
  const gate = "experience";
  const withGoal = <T>(goalId: string, items: readonly T[]) =>
    items.map((item) => ({ ...item, goalId }));
  const strategy = outcomes.flatMap((o) => withGoal(o.experience.goalId, o.strategy));
  const parameters = outcomes.flatMap((o) =>
    o.parameters ? [{ ...o.parameters, goalId: o.experience.goalId }] : [],
  );
  const reliability = outcomes.flatMap((o) => withGoal(o.experience.goalId, o.reliability));
  const parts: SqlCtes[] = [
    { sql: servingParametersCte, params: [] },
    {
      sql: `experience_input as (
        select * from json_to_recordset(?::json) as i(${experienceRowType})),
      experience as (
        insert into experiences (${experienceRowColumns})
        select ${experienceRowColumns} from experience_input, serving_parameters
        where versions @> ?::text[] and versions <@ ?::text[]
        order by goal_id
        on conflict (goal_id) do nothing returning goal_id)`,
      params: [
        json(outcomes.map((o) => o.experience.row)),
        pgArray(servingVersions),
        pgArray(servingVersions),
      ],
    },
    ...(strategy.length > 0 ? [strategyOutcomesCte(strategy, gate)] : []),
    ...(parameters.length > 0 ? [parametersOutcomesCte(parameters, gate)] : []),
    ...(reliability.length > 0 ? [reliabilityOutcomesCte(reliability, gate)] : []),
  ];
  let answer: { recorded: string[]; versions: string[] } | undefined;
  try {
    [answer] = await db.rows<{ recorded: string[]; versions: string[] }>(
      `with ${parts.map((p) => p.sql).join(",\n")}
       select array(select goal_id from experience) as recorded, versions from serving_parameters`,
      parts.flatMap((p) => p.params),
    );
  } catch (err) {
    if (constraintOf(isMeshError(err) ? err.cause : err).includes("tenant_id_fkey")) {
      const tenants = [...new Set(outcomes.map((o) => o.experience.tenantId))];
      throw new MeshError(
        Code.NotFound,
        tenants.length === 1 ? `tenant ${tenants[0]} not found` : "a tenant was not found",
        { cause: err },
      );
    }
    throw err;
  }
  const recorded = new Set(answer!.recorded);
  if (recorded.size === 0 && !sameSet(answer!.versions, servingVersions)) {
    return { status: "stale", servingVersions: answer!.versions };
  }
  return { status: "done", recorded: outcomes.map((o) => recorded.has(o.experience.goalId)) };
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
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
