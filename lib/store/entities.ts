/**
 * MikroORM entity definitions (`defineEntity`, no decorators: tsx and esbuild
 * emit no decorator metadata). They mirror the tables the migrations create;
 * `store.test.ts` checks every property has its column. Relations are plain
 * id columns (foreign keys live in the migrations), because repositories
 * work with ids and never lazily load graphs.
 *
 * Timestamps are `timestamptz(3)`: millisecond precision round-trips exactly
 * through a JavaScript `Date`, which keyset pagination relies on.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { defineEntity, type EntitySchema } from "@mikro-orm/core";
import type {
  AgentStateName,
  AttemptOutcome,
  ErrorRecord,
  GoalStatusName,
  ParametersStateName,
  StepStatusName,
} from "./records.js";

const p = defineEntity.properties;
const ts = () => p.datetime(3);
const createdAt = () => ts().defaultRaw("now()");

export const TenantEntity = defineEntity({
  name: "Tenant",
  tableName: "tenants",
  properties: {
    id: p.text().primary(),
    displayName: p.text(),
    rateLimitPerSecond: p.double().$type<number>().default(0),
    maxConcurrentStreams: p.integer().default(0),
    limits: p.json<JsonObject>(),
    suspendedAt: ts().nullable(),
    suspendedReason: p.text().default(""),
    createdAt: createdAt(),
    updatedAt: createdAt(),
  },
});

export const ApiKeyEntity = defineEntity({
  name: "ApiKey",
  tableName: "api_keys",
  properties: {
    keyId: p.text().primary(),
    tenantId: p.text(),
    name: p.text(),
    roles: p.array().columnType("text[]"),
    secretHash: p.text(),
    createdAt: createdAt(),
    expiresAt: ts().nullable(),
    revokedAt: ts().nullable(),
  },
});

export const GoalEntity = defineEntity({
  name: "Goal",
  tableName: "goals",
  properties: {
    id: p.text().primary(),
    tenantId: p.text(),
    kind: p.text(),
    input: p.json<JsonObject>(),
    idempotencyKey: p.text().nullable(),
    priority: p.integer().default(0),
    deadline: ts().nullable(),
    status: p.text().$type<GoalStatusName>(),
    output: p.json<JsonValue>().nullable(),
    error: p.json<ErrorRecord>().nullable(),
    planId: p.text().nullable(),
    strategy: p.text().nullable(),
    requestedStrategy: p.text().nullable(),
    parentGoalId: p.text().nullable(),
    parentStepId: p.text().nullable(),
    labels: p.json<Record<string, string>>(),
    traceId: p.text().nullable(),
    submittedBy: p.text().nullable(),
    submitterRoles: p.array().columnType("text[]").nullable(),
    traceSpanId: p.text().nullable(),
    createdAt: createdAt(),
    updatedAt: createdAt(),
    finishedAt: ts().nullable(),
    version: p.integer().default(1),
    leaseOwner: p.text().nullable(),
    leaseExpiresAt: ts().nullable(),
    lastEventSeq: p.bigint("number").default(0),
  },
});

export const GoalEventEntity = defineEntity({
  name: "GoalEvent",
  tableName: "goal_events",
  properties: {
    goalId: p.text().primary(),
    sequence: p.bigint("number").primary(),
    tenantId: p.text(),
    type: p.text(),
    data: p.json<JsonValue>(),
    createdAt: createdAt(),
  },
  primaryKeys: ["goalId", "sequence"],
});

export const PlanEntity = defineEntity({
  name: "Plan",
  tableName: "plans",
  properties: {
    id: p.text().primary(),
    tenantId: p.text(),
    goalId: p.text(),
    goalKind: p.text(),
    strategy: p.text(),
    outputStep: p.text(),
    parametersVersion: p.text().nullable(),
    rationale: p.text(),
    collaborative: p.boolean().default(false),
    spec: p.json<JsonObject>(),
    createdAt: createdAt(),
  },
});

export const StepEntity = defineEntity({
  name: "Step",
  tableName: "steps",
  properties: {
    planId: p.text().primary(),
    stepId: p.text().primary(),
    tenantId: p.text(),
    goalId: p.text(),
    position: p.integer().default(0),
    capability: p.text().nullable(),
    status: p.text().$type<StepStatusName>(),
    attempts: p.integer().default(0),
    dependsOn: p.array().columnType("text[]"),
    spec: p.json<JsonObject>(),
    output: p.json<JsonValue>().nullable(),
    error: p.json<ErrorRecord>().nullable(),
    agentIds: p.array().columnType("text[]"),
    childGoalId: p.text().nullable(),
    nextAttemptAt: ts().nullable(),
    leaseOwner: p.text().nullable(),
    leaseExpiresAt: ts().nullable(),
    startedAt: ts().nullable(),
    finishedAt: ts().nullable(),
    updatedAt: createdAt(),
    version: p.integer().default(1),
  },
  primaryKeys: ["planId", "stepId"],
});

export const StepAttemptEntity = defineEntity({
  name: "StepAttempt",
  tableName: "step_attempts",
  properties: {
    attemptId: p.text().primary(),
    tenantId: p.text(),
    goalId: p.text(),
    planId: p.text(),
    stepId: p.text(),
    attempt: p.integer(),
    replica: p.integer().default(0),
    agentId: p.text().nullable(),
    outcome: p.text().$type<AttemptOutcome>(),
    output: p.json<JsonValue>().nullable(),
    error: p.json<ErrorRecord>().nullable(),
    cost: p.double().$type<number>().nullable(),
    dispatchedAt: createdAt(),
    startedAt: ts().nullable(),
    finishedAt: ts().nullable(),
  },
});

export const AgentEntity = defineEntity({
  name: "Agent",
  tableName: "agents",
  properties: {
    id: p.text().primary(),
    name: p.text(),
    instanceId: p.text(),
    version: p.text(),
    card: p.json<JsonObject>(),
    spiffeId: p.text(),
    state: p.text().$type<AgentStateName>(),
    capabilities: p.array().columnType("text[]"),
    registeredAt: createdAt(),
    leaseExpiresAt: ts(),
    lastHeartbeatAt: createdAt(),
    inFlight: p.integer().default(0),
    reliability: p.json<Record<string, number>>(),
    updatedAt: createdAt(),
  },
});

export const AgentSkillEntity = defineEntity({
  name: "AgentSkill",
  tableName: "agent_skills",
  properties: {
    agentId: p.text().primary(),
    capability: p.text().primary(),
  },
  primaryKeys: ["agentId", "capability"],
});

export const ToolEntity = defineEntity({
  name: "Tool",
  tableName: "tools",
  properties: {
    name: p.text().primary(),
    agentId: p.text().nullable(),
    spec: p.json<JsonObject>(),
    updatedAt: createdAt(),
  },
});

export const PlaybookEntity = defineEntity({
  name: "Playbook",
  tableName: "playbooks",
  properties: {
    tenantId: p.text().primary(),
    goalKind: p.text().primary(),
    playbook: p.json<JsonObject>(),
    version: p.integer().default(1),
    createdAt: createdAt(),
    updatedAt: createdAt(),
  },
  primaryKeys: ["tenantId", "goalKind"],
});

export const ExperienceEntity = defineEntity({
  name: "Experience",
  tableName: "experiences",
  properties: {
    goalId: p.text().primary(),
    tenantId: p.text(),
    goalKind: p.text(),
    bucket: p.text(),
    strategy: p.text(),
    parametersVersion: p.text().nullable(),
    success: p.boolean(),
    latencyMs: p.double().$type<number>(),
    cost: p.double().$type<number>().default(0),
    features: p.array<number>(Number).columnType("real[]"),
    outcome: p.json<JsonObject>(),
    createdAt: createdAt(),
  },
});

export const StrategyStatsEntity = defineEntity({
  name: "StrategyStats",
  tableName: "strategy_stats",
  properties: {
    bucket: p.text().primary(),
    strategy: p.text().primary(),
    tenantId: p.text().nullable(),
    goalKind: p.text().nullable(),
    successes: p.double().$type<number>().default(0),
    failures: p.double().$type<number>().default(0),
    recentSuccesses: p.double().$type<number>().default(0),
    recentFailures: p.double().$type<number>().default(0),
    pulls: p.bigint("number").default(0),
    outcomes: p.bigint("number").default(0),
    latencySumMs: p.double().$type<number>().default(0),
    costSum: p.double().$type<number>().default(0),
    updatedAt: createdAt(),
  },
  primaryKeys: ["bucket", "strategy"],
});

export const ParametersVersionEntity = defineEntity({
  name: "ParametersVersion",
  tableName: "parameter_versions",
  properties: {
    version: p.text().primary(),
    state: p.text().$type<ParametersStateName>(),
    params: p.json<JsonObject>(),
    trafficFraction: p.double().$type<number>().default(0),
    successes: p.double().$type<number>().default(0),
    failures: p.double().$type<number>().default(0),
    runId: p.text(),
    note: p.text(),
    createdAt: createdAt(),
    updatedAt: createdAt(),
    revision: p.integer().default(1),
  },
});

export const AgentReliabilityEntity = defineEntity({
  name: "AgentReliability",
  tableName: "agent_reliability",
  properties: {
    agentId: p.text().primary(),
    capability: p.text().primary(),
    score: p.double().$type<number>(),
    observations: p.double().$type<number>(),
    updatedAt: createdAt(),
  },
  primaryKeys: ["agentId", "capability"],
});

export const FeatureFlagEntity = defineEntity({
  name: "FeatureFlag",
  tableName: "feature_flags",
  properties: {
    key: p.text().primary(),
    tenantId: p.text().primary(),
    goalKind: p.text().primary(),
    value: p.json<JsonValue>(),
    updatedAt: createdAt(),
  },
  primaryKeys: ["key", "tenantId", "goalKind"],
});

export const AuditEventEntity = defineEntity({
  name: "AuditEvent",
  tableName: "audit_events",
  properties: {
    seq: p.bigint("number").primary().autoincrement(false),
    time: ts(),
    tenantId: p.text().nullable(),
    actor: p.text(),
    action: p.text(),
    resource: p.text(),
    details: p.json<JsonObject>(),
    prevHash: p.text(),
    hash: p.text(),
  },
});

/** Every entity, for the ORM's `entities` option. */
// biome-ignore lint/suspicious/noExplicitAny: heterogeneous list of schemas
export const entities: EntitySchema<any, any>[] = [
  TenantEntity,
  ApiKeyEntity,
  GoalEntity,
  GoalEventEntity,
  PlanEntity,
  StepEntity,
  StepAttemptEntity,
  AgentEntity,
  AgentSkillEntity,
  ToolEntity,
  PlaybookEntity,
  ExperienceEntity,
  StrategyStatsEntity,
  ParametersVersionEntity,
  AgentReliabilityEntity,
  FeatureFlagEntity,
  AuditEventEntity,
];
