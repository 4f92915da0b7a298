/**
 * A tenant's recorded outcomes (the learning service's experience). One row
 * per goal: recording the same goal twice is a no-op reported as
 * `recorded: false`, which makes outcome delivery over the bus idempotent.
 *
 * @example
 * const { recorded } = await store.tenant(t).experiences.record({ goalId, goalKind, bucket, ... });
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
  /** The outcome as JSON. */
  outcome: JsonObject;
  /** Default now. */
  createdAt?: Date;
}

export class ExperienceRepository {
  /** @internal */
  constructor(
    private readonly db: Db,
    readonly tenantId: string,
  ) {}

  /** Records an outcome once per goal. */
  async record(input: NewExperience): Promise<{ experience: ExperienceRecord; recorded: boolean }> {
    requireText(input.goalId, "goal id");
    requireText(input.strategy, "strategy", 128);
    const features = input.features ?? [];
    if (!features.every(Number.isFinite)) {
      throw new MeshError(Code.InvalidArgument, "features must be finite numbers");
    }
    if (!Number.isFinite(input.latencyMs) || !Number.isFinite(input.cost ?? 0)) {
      throw new MeshError(Code.InvalidArgument, "latency and cost must be finite numbers");
    }
    let row: ExperienceRecord | undefined;
    try {
      [row] = await this.db.mapped<ExperienceRecord>(
        ExperienceEntity,
        `insert into experiences (goal_id, tenant_id, goal_kind, bucket, strategy, parameters_version,
           success, latency_ms, cost, features, outcome, created_at)
         values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?::real[], ?::jsonb, ?)
         on conflict (goal_id) do nothing returning *`,
        [
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
          json(input.outcome),
          input.createdAt ?? new Date(),
        ],
      );
    } catch (err) {
      if (constraintOf(isMeshError(err) ? err.cause : err).includes("tenant_id_fkey")) {
        throw new MeshError(Code.NotFound, `tenant ${this.tenantId} not found`, { cause: err });
      }
      throw err;
    }
    if (row) return { experience: row, recorded: true };
    const [existing] = await this.db.mapped<ExperienceRecord>(
      ExperienceEntity,
      "select * from experiences where tenant_id = ? and goal_id = ?",
      [this.tenantId, input.goalId],
    );
    if (!existing) {
      // The goal id is taken by another tenant's experience: do not reveal it.
      throw new MeshError(Code.AlreadyExists, `an outcome for goal ${input.goalId} exists`);
    }
    return { experience: existing, recorded: false };
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
    const experiences = rows.slice(0, size);
    const last = experiences[experiences.length - 1];
    return {
      experiences,
      nextPageToken:
        rows.length > size && last ? encodeToken([last.createdAt.getTime(), last.goalId]) : "",
    };
  }
}
