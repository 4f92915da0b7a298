/**
 * Persistence: MikroORM on PostgreSQL (or an embedded PostgreSQL), with
 * tenant-scoped repositories and an append-only audit log.
 *
 * @example
 * import { openStore } from "../lib/store/index.js";
 * const store = await openStore();
 * const { goal, created } = await store.tenant("acme").goals.create({ kind: "summarize" });
 */
export type { AgentRegistration, ListAgentsOptions } from "./agent-repository.js";
export { AgentRepository } from "./agent-repository.js";
export type { NewApiKey } from "./api-key-repository.js";
export { ApiKeyRepository } from "./api-key-repository.js";
export {
  hashApiKeySecret,
  newApiKey,
  parseApiKey,
  verifyApiKeySecret,
} from "./api-key-secret.js";
export type { AuditEventInput, AuditListOptions, AuditVerification } from "./audit-log.js";
export {
  AuditLog,
  adminActionEvent,
  auditHash,
  genesisHash,
  goalSubmittedEvent,
  policyDenialEvent,
  registrationEvent,
} from "./audit-log.js";
export { canonicalJson } from "./canonical-json.js";
export type { EmbeddedPostgres, EmbeddedPostgresOptions } from "./embedded-postgres.js";
export { startEmbeddedPostgres } from "./embedded-postgres.js";
export type { NewExperience } from "./experience-repository.js";
export { ExperienceRepository } from "./experience-repository.js";
export type { FlagScope } from "./feature-flag-repository.js";
export { FeatureFlagRepository } from "./feature-flag-repository.js";
export type { NewGoalEvent } from "./goal-event-repository.js";
export { GoalEventRepository } from "./goal-event-repository.js";
export type {
  GoalCreated,
  GoalCreation,
  GoalPage,
  GoalPatch,
  GoalUpdate,
  ListGoalsOptions,
  NewGoal,
} from "./goal-repository.js";
export { GoalRepository } from "./goal-repository.js";
export type {
  BatchOutcome,
  NewParametersVersion,
  OutcomeBatchRecording,
  OutcomeForgetting,
  ParametersPatch,
  PreparedExperience,
  ReliabilityOutcome,
  StrategyOutcome,
} from "./learning-repository.js";
export { LearningRepository } from "./learning-repository.js";
export type { NotifyChannel, NotifyChannelOptions, NotifyEvent } from "./notify-channel.js";
export { channelName, createNotifyChannel } from "./notify-channel.js";
export type {
  AttemptRowState,
  NewPlan,
  NewStep,
  SealedPlanned,
  StepChange,
  StepRowState,
} from "./plan-repository.js";
export { PlanRepository } from "./plan-repository.js";
export { PlaybookRepository } from "./playbook-repository.js";
export * from "./records.js";
export type {
  MigrationStatus,
  OpenStoreOptions,
  StoreTransaction,
  TenantKeyWatcher,
  TenantStore,
} from "./store.js";
export { openStore, Store } from "./store.js";
export { isUnavailable, toStoreError } from "./store-error.js";
export type { StoreHealth, StoreHealthStatus } from "./store-health.js";
export { storeCounts, storeMetrics } from "./store-metrics.js";
export type { NewTenant, TenantPatch } from "./tenant-repository.js";
export { checkTenantId, TenantRepository, tenantIdPattern } from "./tenant-repository.js";
export type { ClaimOptions } from "./work-queue.js";
export { WorkQueue } from "./work-queue.js";
