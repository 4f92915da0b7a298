/**
 * A tenant's recorded outcomes (the learning service's experience). One row
 * per goal: recording the same goal twice is a no-op reported as
 * `recorded: false`, which makes outcome delivery over the bus idempotent.
 *
 * `recordOutcome` also folds the outcome into the learning statistics, in the
 * same statement as the insert and only when the insert recorded it: one
 * round trip, atomic without a transaction.
 *
 * @example
 * const { recorded } = await store.tenant(t).experiences.record({ goalId, goalKind, bucket, ... });
 * const answer = await store.tenant(t).experiences.recordOutcome(experience, {
 *   servingVersions: ["v3"], strategy: [{ bucket: "v3|...", ... }], reliability: [...] });
 * if (answer.status === "stale") retryWith(answer.servingVersions);
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import {
  constraintOf,
  type Db,
  decodeToken,
  encodeToken,
  json,
  pageSize,
  pgArray,
  requireText,
} from "./db.js";
import { ExperienceEntity } from "./entities.js";
import {
  parametersOutcomeCte,
  type ReliabilityOutcome,
  reliabilityOutcomesCte,
  type StrategyOutcome,
  servingParametersCte,
  strategyOutcomesCte,
} from "./learning-repository.js";
import type { PayloadCipher } from "./payload-cipher.js";
import { payloadColumns } from "./payload-columns.js";
import type { ExperienceRecord } from "./records.js";

export interface NewExperience {
  goalId: string;
  goalKind: string;
  bucket: string;
  strategy: string;
  parametersVersion?: string;
  success: boolean;
  latencyMs: number;
  /** Default 0. */
  cost?: number;
  /** Feature vector, stored as `real[]`; default empty. */
  features?: number[];
  /**
   * Similarity signature of `features` (the learning domain's
   * `similaritySignature`): a signed 64-bit integer in decimal and its band
   * codes. Without one the experience is not found by `similar`.
   */
  signature?: { hash: string; bands: readonly number[] };
  /** The outcome as JSON. */
  outcome: JsonObject;
  /** Default now. */
  createdAt?: Date;
}

/** What a recorded outcome changes in the learning statistics (`recordOutcome`). */
export interface OutcomeLearning {
  /**
   * The parameters versions the caller takes to be CURRENT or CANARY (none
   * before training). Nothing is written unless exactly these serve.
   */
  servingVersions: readonly string[];
  /** One outcome per statistics row: a row per serving version. */
  strategy: readonly StrategyOutcome[];
  /** The choosing version's serving count, when that version serves. */
  parameters?: { version: string; success: boolean };
  /** Every agent result, in order. */
  reliability: readonly ReliabilityOutcome[];
}

/**
 * How `recordOutcome` went: recorded; already recorded for this goal (nothing
 * changed); or not attempted because other versions serve than the caller
 * said (nothing changed; redo it with these).
 */
export type OutcomeRecording =
  | { status: "recorded" }
  | { status: "duplicate" }
  | { status: "stale"; servingVersions: string[] };

const recordColumns = `goal_id, tenant_id, goal_kind, bucket, strategy, parameters_version,
  success, latency_ms, cost, features, outcome, created_at`;
const experienceColumns = `${recordColumns}, signature, lsh_bands`;
const experienceValues = `?::text, ?::text, ?::text, ?::text, ?::text, ?::text,
  ?::boolean, ?::float8, ?::float8, ?::real[], ?::jsonb, ?::timestamptz, ?::bigint, ?::int[]`;

/** Most rows `similar` returns, and most band matches it ranks. */
export const MAX_SIMILAR = 1_000;
export const MAX_SIMILAR_POOL = 5_000;

export class ExperienceRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
    private readonly cipher: PayloadCipher,
  ) {}

  /**
   * Rows as stored, with the outcome opened. The columns similarity search
   * and training read (bucket, strategy, figures, the hashed feature vector
   * and its signature) are kept in clear; the goal's own text is only in the
   * outcome.
   */
  #open(rows: ExperienceRecord[]): Promise<ExperienceRecord[]> {
    return Promise.all(
      rows.map(async (r) => ({
        ...r,
        outcome: await this.cipher.openPayload(
          this.tenantId,
          payloadColumns.experienceOutcome,
          r.outcome,
        ),
      })),
    );
  }

  /** Records an outcome once per goal. */
  async record(input: NewExperience): Promise<{ experience: ExperienceRecord; recorded: boolean }> {
    const values = await this.#values(input);
    const [row] = await this.#insert(() =>
      this.db.mapped<ExperienceRecord>(
        ExperienceEntity,
        `insert into experiences (${experienceColumns}) values (${experienceValues})
         on conflict (goal_id) do nothing returning *`,
        values,
      ),
    );
    if (row) return { experience: (await this.#open([row]))[0]!, recorded: true };
    const [existing] = await this.db.mapped<ExperienceRecord>(
      ExperienceEntity,
      "select * from experiences where tenant_id = ? and goal_id = ?",
      [this.tenantId, input.goalId],
    );
    if (!existing) throw this.#takenByAnotherTenant(input.goalId);
    return { experience: (await this.#open([existing]))[0]!, recorded: false };
  }

  /**
   * Records an outcome once per goal and, only when it did, applies
   * `learning` to the statistics in the same statement. Nothing at all is
   * written (`stale`) unless exactly `learning.servingVersions` serve when
   * the statement runs. NOT_FOUND for an unknown tenant; ALREADY_EXISTS when
   * the goal id is taken by another tenant's experience.
   */
  async recordOutcome(input: NewExperience, learning: OutcomeLearning): Promise<OutcomeRecording> {
    const gate = "experience";
    const parts = [
      { sql: servingParametersCte, params: [] as unknown[] },
      {
        sql: `experience as (
          insert into experiences (${experienceColumns})
          select ${experienceValues} from serving_parameters
          where versions @> ?::text[] and versions <@ ?::text[]
          on conflict (goal_id) do nothing returning goal_id)`,
        params: [
          ...(await this.#values(input)),
          pgArray(learning.servingVersions),
          pgArray(learning.servingVersions),
        ],
      },
      ...(learning.strategy.length > 0 ? [strategyOutcomesCte(learning.strategy, gate)] : []),
      ...(learning.parameters ? [parametersOutcomeCte(learning.parameters, gate)] : []),
      ...(learning.reliability.length > 0
        ? [reliabilityOutcomesCte(learning.reliability, gate)]
        : []),
    ];
    const [answer] = await this.#insert(() =>
      this.db.rows<{ recorded: boolean; versions: string[] }>(
        `with ${parts.map((p) => p.sql).join(",\n")}
         select exists (select from experience) as recorded, versions from serving_parameters`,
        parts.flatMap((p) => p.params),
      ),
    );
    if (answer!.recorded) return { status: "recorded" };
    if (!sameSet(answer!.versions, learning.servingVersions)) {
      return { status: "stale", servingVersions: answer!.versions };
    }
    const [existing] = await this.db.rows(
      "select 1 from experiences where tenant_id = ? and goal_id = ?",
      [this.tenantId, input.goalId],
    );
    if (!existing) throw this.#takenByAnotherTenant(input.goalId);
    return { status: "duplicate" };
  }

  /**
   * Experiences of a goal kind and strategies most similar to a signature:
   * rows sharing at least one band (GIN index on `lsh_bands`), the newest
   * `MAX_SIMILAR_POOL` of them ranked by Hamming distance, at most `limit`
   * (≤ `MAX_SIMILAR`). Bounded whatever the table holds.
   */
  async similar(input: {
    goalKind: string;
    strategies: readonly string[];
    signature: { hash: string; bands: readonly number[] };
    limit: number;
  }): Promise<ExperienceRecord[]> {
    const limit = Math.min(Math.max(0, Math.floor(input.limit)), MAX_SIMILAR);
    if (limit === 0 || input.strategies.length === 0 || input.signature.bands.length === 0) {
      return [];
    }
    if (!/^-?\d{1,19}$/.test(input.signature.hash)) {
      throw new MeshError(Code.InvalidArgument, "signature must be a 64-bit integer");
    }
    const rows = await this.db.mapped<ExperienceRecord>(
      ExperienceEntity,
      `select ${recordColumns} from (
         select ${recordColumns}, signature from experiences
         where tenant_id = ? and goal_kind = ? and strategy = any(?::text[])
           and lsh_bands && ?::int[]
         order by created_at desc limit ?) pool
       order by bit_count((signature # ?::bigint)::bit(64)), created_at desc
       limit ?`,
      [
        this.tenantId,
        input.goalKind,
        pgArray(input.strategies),
        pgArray(input.signature.bands),
        MAX_SIMILAR_POOL,
        input.signature.hash,
        limit,
      ],
    );
    return this.#open(rows);
  }

  /** One page of experiences, newest first, optionally of one goal kind. */
  async list(
    options: { goalKind?: string; pageSize?: number; pageToken?: string } = {},
  ): Promise<{ experiences: ExperienceRecord[]; nextPageToken: string }> {
    const size = pageSize(options.pageSize);
    const where = ["tenant_id = ?"];
    const params: unknown[] = [this.tenantId];
    if (options.goalKind) {
      where.push("goal_kind = ?");
      params.push(options.goalKind);
    }
    if (options.pageToken) {
      const [ms, id] = decodeToken(options.pageToken, 2);
      where.push("(created_at, goal_id) < (?, ?)");
      params.push(new Date(Number(ms)), String(id));
    }
    params.push(size + 1);
    const rows = await this.db.mapped<ExperienceRecord>(
      ExperienceEntity,
      `select * from experiences where ${where.join(" and ")}
       order by created_at desc, goal_id desc limit ?`,
      params,
    );
    const experiences = await this.#open(rows.slice(0, size));
    const last = experiences[experiences.length - 1];
    return {
      experiences,
      nextPageToken:
        rows.length > size && last ? encodeToken([last.createdAt.getTime(), last.goalId]) : "",
    };
  }

  /** The parameters of `experienceValues`, validated, the outcome as the tenant's mode stores it. */
  async #values(input: NewExperience): Promise<unknown[]> {
    requireText(input.goalId, "goal id");
    requireText(input.strategy, "strategy", 128);
    const features = input.features ?? [];
    if (!features.every(Number.isFinite)) {
      throw new MeshError(Code.InvalidArgument, "features must be finite numbers");
    }
    const sig = input.signature;
    if (
      sig &&
      (!/^-?\d{1,19}$/.test(sig.hash) ||
        sig.bands.length > 64 ||
        !sig.bands.every((b) => Number.isInteger(b) && b >= 0 && b < 2 ** 31))
    ) {
      throw new MeshError(Code.InvalidArgument, "signature must be a 64-bit integer and bands");
    }
    if (!Number.isFinite(input.latencyMs) || !Number.isFinite(input.cost ?? 0)) {
      throw new MeshError(Code.InvalidArgument, "latency and cost must be finite numbers");
    }
    return [
      input.goalId,
      this.tenantId,
      input.goalKind,
      input.bucket,
      input.strategy,
      input.parametersVersion || null,
      input.success,
      input.latencyMs,
      input.cost ?? 0,
      pgArray(features),
      json(
        await this.cipher.sealPayload(
          this.tenantId,
          payloadColumns.experienceOutcome,
          input.outcome,
        ),
      ),
      input.createdAt ?? new Date(),
      input.signature?.hash ?? null,
      input.signature ? pgArray(input.signature.bands) : null,
    ];
  }

  /** Runs an experience insert; NOT_FOUND when the tenant does not exist. */
  async #insert<T>(statement: () => Promise<T>): Promise<T> {
    try {
      return await statement();
    } catch (err) {
      if (constraintOf(isMeshError(err) ? err.cause : err).includes("tenant_id_fkey")) {
        throw new MeshError(Code.NotFound, `tenant ${this.tenantId} not found`, { cause: err });
      }
      throw err;
    }
  }

  /** The goal id is taken by another tenant's experience: do not reveal it. */
  #takenByAnotherTenant(goalId: string): MeshError {
    return new MeshError(Code.AlreadyExists, `an outcome for goal ${goalId} exists`);
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
}
