/**
 * `agentmesh/sdk`: everything an application or an agent outside this
 * repository imports. Nothing else of the package is public; a browser bundle
 * imports `agentmesh/sdk/client` (the clients and result helpers only).
 *
 * @example
 * import { createClient, defineAgent, runAgent } from "agentmesh/sdk";
 */

// --- Calling the mesh (through the gateway: Connect, gRPC-Web; API key or JWT)

/**
 * A refused call throws `ConnectError`; its `code` (`Code.NotFound`,
 * `Code.InvalidArgument`, `Code.PermissionDenied`...) says why.
 */
export { Code, ConnectError } from "@connectrpc/connect";
/** The messages the clients return, as types. */
export type { ErrorInfo } from "../gen/agentmesh/v1/common_pb.js";
/** Status enums of goals, steps and agents (`GoalStatus.SUCCEEDED`...). */
export { GoalStatus, StepStatus } from "../gen/agentmesh/v1/common_pb.js";
export type { Goal, GoalEvent, StepState } from "../gen/agentmesh/v1/executor_pb.js";
export type { Playbook } from "../gen/agentmesh/v1/planner_pb.js";
export type { Agent, AgentCard } from "../gen/agentmesh/v1/registry_pb.js";
/** An agent's state in the registry (`AgentState.LIVE`...). */
export { AgentState } from "../gen/agentmesh/v1/registry_pb.js";
/**
 * `createClient({ baseUrl, apiKey })`: one typed Connect client per public
 * service (`executor`, `registry`, `planner`, `learning`, `admin`).
 * `bearerAuth(credential)` is its authentication interceptor, for transports of
 * your own.
 */
/** Folds one `WatchGoal` event into a `Goal` held in memory (status, steps). */
/**
 * Results as plain values: `outputJson(goal.output)` is the output as JSON,
 * `isFinished(status)` says the goal is final, `goalStatusName(status)` prints it.
 */
export {
  applyGoalEvent,
  bearerAuth,
  type ClientOptions,
  createClient,
  goalStatusName,
  isFinished,
  type MeshClient,
  outputJson,
} from "./client/index.js";

// --- Writing an agent

/** Handler errors: `nonRetryable(message)` fails a step for good; `AgentError` carries a code. */
export {
  AgentError,
  type AgentErrorOptions,
  isAgentError,
  nonRetryable,
} from "./agent/agent-error.js";
/** `connectAgent(name, options?)`: the bus and registry link `runAgent` connects, for your own wiring. */
export {
  type AgentConnection,
  type AgentConnectionOptions,
  connectAgent,
} from "./agent/connect-agent.js";
/**
 * `defineAgent({ name, version, skills })` checks and freezes an agent: each
 * skill is a capability (`text.shout`) with a JSON-schema input and a handler.
 */
export {
  type AgentDefinition,
  type AgentDefinitionInput,
  agentCard,
  defineAgent,
  type JsonSchema,
  type SideEffectName,
  type SkillContext,
  type SkillDefinition,
} from "./agent/define-agent.js";
/** How an agent reaches the registry: over a mesh channel, or not at all (standalone). */
export { type GrpcRegistryLinkOptions, grpcRegistryLink } from "./agent/grpc-registry-link.js";

/** Registration and readiness of a running agent (`running.status()`). */
export type { AgentStatus, LeasePhase } from "./agent/lease-lifecycle.js";
export {
  type AgentLiveness,
  noopRegistryLink,
  type RegisterOptions,
  type Registration,
  type RegistryLink,
} from "./agent/registry-link.js";
/**
 * `runAgent(agent, options?)` registers the agent and consumes its
 * capabilities' jobs until SIGTERM/SIGINT, then drains. Without a `bus` it
 * connects by itself: certificate `$AGENTMESH_CERT_DIR/agent-<name>`, NATS at
 * `NATS_URL`, the registry at `AGENTMESH_REGISTRY_ADDR` (or `options.connection`).
 */
export { type RunAgentOptions, type RunningAgent, runAgent } from "./agent/run-agent.js";

/** A `SkillContext` for unit-testing a handler without a mesh. */
export { testSkillContext } from "./agent/test-context.js";
