/**
 * Conversions between the learning domain's plain objects and the generated
 * protobuf messages (`gen/agentmesh/v1/learning_pb.ts`, `jobs_pb.ts`). Times
 * are epoch/duration milliseconds inside, Timestamp/Duration on the wire;
 * nothing else differs, so the RPC handlers stay one line per field.
 *
 * @example
 * const outcome = outcomeFromMessage(req.outcome, Date.now()); // INVALID_ARGUMENT when absent
 * validateOutcome(outcome);
 * return chooseResultToMessage(chooseStrategy({ ... }));
 */
import { create } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { DecisionContext as DecisionContextMessage } from "../../gen/agentmesh/v1/common_pb.js";
import { DecisionContextSchema } from "../../gen/agentmesh/v1/common_pb.js";
import type { Outcome, TrainingJob } from "../../gen/agentmesh/v1/jobs_pb.js";
import { AgentResultSchema, OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import type {
  AgentReliability,
  ChooseStrategyResponse,
  ParametersVersion,
  StrategyStats,
} from "../../gen/agentmesh/v1/learning_pb.js";
import {
  AgentReliabilitySchema,
  ChooseStrategyResponseSchema,
  ParametersState as ParametersStateEnum,
  ParametersVersionSchema,
  StrategyStatsSchema,
} from "../../gen/agentmesh/v1/learning_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { armView } from "./domain/arm-stats.js";
import type { ChooseStrategyResult } from "./domain/choose-strategy.js";
import type { DecisionContext } from "./domain/context-bucket.js";
import { parseBucketKey } from "./domain/context-bucket.js";
import { DEFAULT_HALF_LIFE_MS } from "./domain/decay.js";
import type { OutcomeRecord } from "./domain/outcome.js";
import type { ParametersState, VersionRecord } from "./domain/parameter-versions.js";
import type { ParametersSnapshot } from "./domain/parameters.js";
import type { ReliabilityScore } from "./domain/reliability.js";

/** A decoded context as a domain context (a copy; the message may be reused). */
export function contextFromMessage(msg: DecisionContextMessage | undefined): DecisionContext {
  if (!msg) throw new MeshError(Code.InvalidArgument, "context is required");
  return {
    tenantId: msg.tenantId,
    goalKind: msg.goalKind,
    sizeClass: msg.sizeClass,
    text: msg.text,
    features: { ...msg.features },
  };
}

/** A domain context as a message. */
export function contextToMessage(ctx: DecisionContext): DecisionContextMessage {
  return create(DecisionContextSchema, {
    tenantId: ctx.tenantId,
    goalKind: ctx.goalKind,
    sizeClass: ctx.sizeClass,
    text: ctx.text ?? "",
    features: { ...ctx.features },
  });
}

/**
 * A decoded Outcome as a domain record. A missing `finished_at` becomes
 * `receivedAt` (the bus or RPC receive time); a missing context is INVALID_ARGUMENT.
 */
export function outcomeFromMessage(msg: Outcome | undefined, receivedAt: number): OutcomeRecord {
  if (!msg) throw new MeshError(Code.InvalidArgument, "outcome is required");
  const finishedAt = msg.finishedAt ? timestampMs(msg.finishedAt) : receivedAt;
  return {
    goalId: msg.goalId,
    context: contextFromMessage(msg.context),
    strategy: msg.strategy,
    parametersVersion: msg.parametersVersion,
    success: msg.success,
    latencyMs: msg.latency ? durationMs(msg.latency) : 0,
    cost: msg.cost,
    finishedAt,
    collaborative: msg.collaborative,
    agentResults: msg.agentResults.map((r) => ({
      agentId: r.agentId,
      capability: r.capability,
      success: r.success,
      latencyMs: r.latency ? durationMs(r.latency) : 0,
    })),
  };
}

/** A domain record as an Outcome message (e.g. for ListExperiences). */
export function outcomeToMessage(o: OutcomeRecord): Outcome {
  return create(OutcomeSchema, {
    goalId: o.goalId,
    context: contextToMessage(o.context),
    strategy: o.strategy,
    parametersVersion: o.parametersVersion,
    success: o.success,
    latency: durationFromMs(o.latencyMs),
    cost: o.cost,
    finishedAt: timestampFromMs(o.finishedAt),
    collaborative: o.collaborative,
    agentResults: o.agentResults.map((r) =>
      create(AgentResultSchema, {
        agentId: r.agentId,
        capability: r.capability,
        success: r.success,
        latency: durationFromMs(r.latencyMs),
      }),
    ),
  });
}

/** A decision as the RPC response. */
export function chooseResultToMessage(r: ChooseStrategyResult): ChooseStrategyResponse {
  return create(ChooseStrategyResponseSchema, {
    strategy: r.strategy,
    selector: r.selector,
    parametersVersion: r.parametersVersion,
    scores: { ...r.scores },
    reason: r.reason,
    canary: r.canary,
  });
}

const stateToEnum: Record<ParametersState, ParametersStateEnum> = {
  CURRENT: ParametersStateEnum.CURRENT,
  CANARY: ParametersStateEnum.CANARY,
  RETIRED: ParametersStateEnum.RETIRED,
  ROLLED_BACK: ParametersStateEnum.ROLLED_BACK,
};

/** A version record as a ParametersVersion message. */
export function versionToMessage(v: VersionRecord): ParametersVersion {
  return create(ParametersVersionSchema, {
    version: v.version,
    state: stateToEnum[v.state],
    createdAt: timestampFromMs(v.createdAt),
    runId: v.runId,
    trafficFraction: v.trafficFraction,
    successes: v.successes,
    failures: v.failures,
    note: v.note,
  });
}

/**
 * A snapshot's statistics as StrategyStats messages, optionally only for one
 * tenant and/or goal kind (empty filter fields match all), ordered by bucket
 * then strategy.
 */
export function strategyStatsMessages(
  p: ParametersSnapshot,
  now: number,
  filter: { tenantId?: string; goalKind?: string } = {},
): StrategyStats[] {
  const out: StrategyStats[] = [];
  const { alpha, beta } = p.config.prior;
  for (const key of Object.keys(p.buckets).sort()) {
    const b = parseBucketKey(key);
    if (filter.tenantId && b?.tenantId !== filter.tenantId) continue;
    if (filter.goalKind && b?.goalKind !== filter.goalKind) continue;
    const bucket = p.buckets[key]!;
    for (const strategy of Object.keys(bucket).sort()) {
      const v = armView(bucket[strategy], now, p.halfLifeMs);
      out.push(
        create(StrategyStatsSchema, {
          strategy,
          bucket: key,
          successes: v.successes,
          failures: v.failures,
          meanLatencyMs: v.meanLatencyMs,
          meanCost: v.meanCost,
          posteriorMean: (alpha + v.successes) / (alpha + beta + v.successes + v.failures),
          pulls: BigInt(v.pulls),
        }),
      );
    }
  }
  return out;
}

/** A reliability score as an AgentReliability message. */
export function reliabilityToMessage(s: ReliabilityScore): AgentReliability {
  return create(AgentReliabilitySchema, { ...s });
}

/** The half-life a training job asks for (0 or absent means the 7-day default). */
export function trainingHalfLifeMs(job: TrainingJob): number {
  const ms = job.decayHalfLife ? durationMs(job.decayHalfLife) : 0;
  return ms > 0 ? ms : DEFAULT_HALF_LIFE_MS;
}
