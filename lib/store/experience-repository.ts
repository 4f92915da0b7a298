/**
 * A tenant's recorded outcomes (the learning service's experience). One row
 * per goal: recording the same goal twice is a no-op reported as
 * `recorded: false`, which makes outcome delivery over the bus idempotent.
 *
 * The learning service records outcomes with `store.learning.recordOutcomes`,
 * which inserts a batch of experiences `prepare`d here (validated, sealed as
 * the tenant stores them) and folds the ones it inserted into the learning
 * statistics in the same statement.
 *
 * @example
 * const { recorded } = await store.tenant(t).experiences.record({ goalId, goalKind, bucket, ... });
 * const prepared = await store.tenant(t).experiences.prepare({ goalId, goalKind, bucket, ... });
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
import type { PreparedExperience } from "./learning-repository.js";
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
   * The experience, validated and its outcome sealed as this tenant stores
   * it, for `store.learning.recordOutcomes`. FAILED_PRECONDITION when the
   * tenant's keys were erased.
   */
  async prepare(input: NewExperience): Promise<PreparedExperience> {
    return { tenantId: this.tenantId, goalId: input.goalId, row: await this.#row(input) };
  }

  /** Which of these goals have an experience of this tenant. */
  async recordedGoals(goalIds: readonly string[]): Promise<Set<string>> {
    if (goalIds.length === 0) return new Set();
    const rows = await this.db.rows<{ goal_id: string }>(
      "select goal_id from experiences where tenant_id = ? and goal_id = any(?::text[])",
      [this.tenantId, pgArray(goalIds)],
    );
    return new Set(rows.map((r) => r.goal_id));
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

  /** The parameters of `experienceValues`. */
  async #values(input: NewExperience): Promise<unknown[]> {
    const r = await this.#row(input);
    return [
      r.goal_id,
      r.tenant_id,
      r.goal_kind,
      r.bucket,
      r.strategy,
      r.parameters_version,
      r.success,
      r.latency_ms,
      r.cost,
      pgArray(r.features),
      json(r.outcome),
      r.created_at,
      r.signature,
      r.lsh_bands ? pgArray(r.lsh_bands) : null,
    ];
  }

  /** The row by column, validated, the outcome as the tenant's mode stores it. */
  async #row(input: NewExperience) {
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
    return {
      goal_id: input.goalId,
      tenant_id: this.tenantId,
      goal_kind: input.goalKind,
      bucket: input.bucket,
      strategy: input.strategy,
      parameters_version: input.parametersVersion || null,
      success: input.success,
      latency_ms: input.latencyMs,
      cost: input.cost ?? 0,
      features,
      outcome: await this.cipher.sealPayload(
        this.tenantId,
        payloadColumns.experienceOutcome,
        input.outcome,
      ),
      created_at: input.createdAt ?? new Date(),
      signature: input.signature?.hash ?? null,
      lsh_bands: input.signature?.bands ?? null,
    };
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
