/**
 * The rows the repositories hand out: plain objects with camelCase fields,
 * `Date` timestamps (millisecond precision, exactly as stored) and `null` for
 * absent values. They are what services read and map onto protobuf messages;
 * nothing here is a managed ORM entity.
 *
 * Status columns hold the protobuf-es enum member names without the prefix
 * (`GoalStatus.PENDING` is stored as `"PENDING"`), so `GoalStatus[record.status]`
 * converts to the wire enum and `GoalStatus[n] as GoalStatusName` back.
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import type { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import type { ParametersState } from "../../gen/agentmesh/v1/learning_pb.js";
import type { AgentState } from "../../gen/agentmesh/v1/registry_pb.js";

export type { JsonObject, JsonValue };

/** `"PENDING" | "PLANNING" | ...`: a stored goal status. */
export type GoalStatusName = Exclude<keyof typeof GoalStatus, "UNSPECIFIED">;
/** `"PENDING" | "DISPATCHED" | ... | "RETRY_WAIT"`: a stored step status. */
export type StepStatusName = Exclude<keyof typeof StepStatus, "UNSPECIFIED">;
/** `"LIVE" | "DRAINING" | "EXPIRED" | "DEREGISTERED" | "PROBATION"`: a stored agent state. */
export type AgentStateName = Exclude<keyof typeof AgentState, "UNSPECIFIED">;
/** `"CURRENT" | "CANARY" | "RETIRED" | "ROLLED_BACK"`: a stored parameter version state. */
export type ParametersStateName = Exclude<keyof typeof ParametersState, "UNSPECIFIED">;
/** How one step attempt ended; `DISPATCHED`/`RUNNING` while it has not. */
export type AttemptOutcome =
  | "DISPATCHED"
  | "RUNNING"
  | "SUCCEEDED"
  | "FAILED"
  | "TIMED_OUT"
  | "CANCELLED";

export const goalStatuses: readonly GoalStatusName[] = [
  "PENDING",
  "PLANNING",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "CANCELLED",
];
export const terminalGoalStatuses: readonly GoalStatusName[] = ["SUCCEEDED", "FAILED", "CANCELLED"];
export const stepStatuses: readonly StepStatusName[] = [
  "PENDING",
  "DISPATCHED",
  "RUNNING",
  "SUCCEEDED",
  "FAILED",
  "CANCELLED",
  "RETRY_WAIT",
];
export const terminalStepStatuses: readonly StepStatusName[] = ["SUCCEEDED", "FAILED", "CANCELLED"];

export interface TenantRecord {
  /** Lowercase letters, digits and dashes, e.g. `acme`. */
  id: string;
  displayName: string;
  /** Requests per second at the gateway; 0 means the gateway default. */
  rateLimitPerSecond: number;
  /** Concurrent streams at the gateway; 0 means the gateway default. */
  maxConcurrentStreams: number;
  /** Further limits (e.g. `{ "maxGoalsRunning": 100 }`), free-form. */
  limits: JsonObject;
  /** When it was suspended (its calls are refused); null while active. */
  suspendedAt: Date | null;
  suspendedReason: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface ApiKeyRecord {
  /** Public id, the prefix of the secret; unique across tenants. */
  keyId: string;
  tenantId: string;
  name: string;
  roles: string[];
  /** `sha256:<hex>` of the secret (see `api-key-secret.ts`); the secret itself is never stored. */
  secretHash: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
}

/** A failure as stored: the shape of `ErrorInfo` in JSON. */
export interface ErrorRecord {
  code: string;
  message: string;
  retryable?: boolean;
  details?: JsonObject;
}

export interface GoalRecord {
  id: string;
  tenantId: string;
  kind: string;
  input: JsonObject;
  /** Null when the client sent none; unique per tenant otherwise. */
  idempotencyKey: string | null;
  priority: number;
  deadline: Date | null;
  status: GoalStatusName;
  output: JsonValue | null;
  error: ErrorRecord | null;
  planId: string | null;
  strategy: string | null;
  /** Strategy the client asked for at submission, if any. */
  requestedStrategy: string | null;
  parentGoalId: string | null;
  parentStepId: string | null;
  labels: Record<string, string>;
  traceId: string | null;
  /**
   * Who the goal acts for: the delegated principal as `<tenant>/<subject>`, else
   * the submitting mesh identity's SPIFFE ID; a child goal has its parent's.
   * Null for goals stored before migration 0004.
   */
  submittedBy: string | null;
  /** The roles of the principal the goal acts for, at submission (null: none kept). */
  submitterRoles: string[] | null;
  /** The span the goal's trace continues from (its submission's server span). */
  traceSpanId: string | null;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
  /** Optimistic-lock version; every update increments it. */
  version: number;
  /** Replica holding the goal's work lease (see `WorkQueue.claimGoals`). */
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  /** Sequence of the goal's latest event; 0 before the first. */
  lastEventSeq: number;
}

export interface GoalEventRecord {
  goalId: string;
  tenantId: string;
  /** From 1, without gaps, per goal. */
  sequence: number;
  /** Event kind, e.g. `submitted`, `stepSucceeded` (the GoalEvent oneof case). */
  type: string;
  /** The event body, typically the protobuf JSON of the oneof value. */
  data: JsonValue;
  createdAt: Date;
}

export interface PlanRecord {
  id: string;
  tenantId: string;
  goalId: string;
  goalKind: string;
  strategy: string;
  outputStep: string;
  parametersVersion: string | null;
  rationale: string;
  collaborative: boolean;
  /** The whole plan (protobuf JSON of `Plan`), steps included. */
  spec: JsonObject;
  createdAt: Date;
}

export interface StepRecord {
  tenantId: string;
  goalId: string;
  planId: string;
  stepId: string;
  /** Index of the step in the plan, from 0. */
  position: number;
  /** Null for sub-goal steps. */
  capability: string | null;
  status: StepStatusName;
  /** Attempts started so far. */
  attempts: number;
  dependsOn: string[];
  /** The step as planned (protobuf JSON of `Step`). */
  spec: JsonObject;
  output: JsonValue | null;
  error: ErrorRecord | null;
  agentIds: string[];
  childGoalId: string | null;
  /** When a RETRY_WAIT step becomes due. */
  nextAttemptAt: Date | null;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  version: number;
}

export interface StepAttemptRecord {
  /** Unique id of the attempt: the job's dedup id, the key for idempotent results. */
  attemptId: string;
  tenantId: string;
  goalId: string;
  planId: string;
  stepId: string;
  /** Attempt number, from 1. */
  attempt: number;
  /** Replica index for arbitrated steps, from 0. */
  replica: number;
  agentId: string | null;
  outcome: AttemptOutcome;
  output: JsonValue | null;
  error: ErrorRecord | null;
  cost: number | null;
  dispatchedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export interface AgentRecord {
  /** Registry-assigned id, stable for one (name, instanceId) across re-registrations. */
  id: string;
  /** Card name. */
  name: string;
  instanceId: string;
  version: string;
  /** The card as registered (protobuf JSON of `AgentCard`). */
  card: JsonObject;
  spiffeId: string;
  state: AgentStateName;
  /** Capabilities of the card's skills (also indexed in `agent_skills`). */
  capabilities: string[];
  registeredAt: Date;
  leaseExpiresAt: Date;
  lastHeartbeatAt: Date;
  inFlight: number;
  /** Success score per capability in [0, 1]. */
  reliability: Record<string, number>;
  updatedAt: Date;
}

export interface ToolRecord {
  name: string;
  /** Agent providing the tool; null for operator-registered tools. */
  agentId: string | null;
  /** The tool (protobuf JSON of `Tool`). */
  spec: JsonObject;
  updatedAt: Date;
}

export interface PlaybookRecord {
  tenantId: string;
  goalKind: string;
  /** The playbook (protobuf JSON of `Playbook`). */
  playbook: JsonObject;
  /** Increases by one on every change, from 1. */
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface ExperienceRecord {
  goalId: string;
  tenantId: string;
  goalKind: string;
  /** Context bucket, e.g. `tenant=acme/kind=summarize/size=m`. */
  bucket: string;
  strategy: string;
  parametersVersion: string | null;
  success: boolean;
  latencyMs: number;
  cost: number;
  /** Hashed feature vector of the goal's text (stored as `real[]`). */
  features: number[];
  /** The outcome (protobuf JSON of `Outcome`). */
  outcome: JsonObject;
  createdAt: Date;
}

export interface StrategyStatsRecord {
  bucket: string;
  strategy: string;
  /** Tenant and kind the bucket belongs to, for filtering; null for global buckets. */
  tenantId: string | null;
  goalKind: string | null;
  successes: number;
  failures: number;
  /** The same counts with a short memory (see `StrategyOutcome.forgetting`). */
  recentSuccesses: number;
  recentFailures: number;
  /** Times chosen. */
  pulls: number;
  /** Outcomes recorded (not decayed): the divisor of the sums. */
  outcomes: number;
  latencySumMs: number;
  costSum: number;
  updatedAt: Date;
}

export interface ParametersVersionRecord {
  version: string;
  state: ParametersStateName;
  params: JsonObject;
  trafficFraction: number;
  successes: number;
  failures: number;
  runId: string;
  note: string;
  createdAt: Date;
  updatedAt: Date;
  /** Optimistic-lock version of the row. */
  revision: number;
}

export interface AgentReliabilityRecord {
  agentId: string;
  capability: string;
  /** Decayed success rate in [0, 1]. */
  score: number;
  /** Decayed number of observations behind the score. */
  observations: number;
  updatedAt: Date;
}

export interface FeatureFlagRecord {
  key: string;
  /** `""` means every tenant. */
  tenantId: string;
  /** `""` means every goal kind. */
  goalKind: string;
  value: JsonValue;
  updatedAt: Date;
}

export interface AuditEventRecord {
  /** From 1, without gaps. */
  seq: number;
  time: Date;
  tenantId: string | null;
  /** Who: a SPIFFE ID, `tenant/subject`, or `system`. */
  actor: string;
  /** What, dot-separated: `agent.registered`, `policy.denied`, `goal.submitted`, `admin.tenant.created`. */
  action: string;
  /** On what, e.g. `goal/<id>`, `agent/<id>`, `/agentmesh.v1.ExecutorService/SubmitGoal`. */
  resource: string;
  details: JsonObject;
  /** Hex sha256 of the previous row; 64 zeros for the first. */
  prevHash: string;
  /** Hex `sha256(prevHash || canonical(event))`. */
  hash: string;
}
