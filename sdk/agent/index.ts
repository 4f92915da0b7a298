/**
 * The agent SDK: declare an agent with `defineAgent`, run it with `runAgent`.
 * What a handler can rely on (deadlines, at most once per attempt, which id to
 * key side effects on) is the handler contract in `sdk/README.md`.
 *
 * @example
 * import { defineAgent, runAgent } from "agentmesh/sdk";
 *
 * const agent = defineAgent({
 *   name: "shouter",
 *   version: "1.0.0",
 *   skills: {
 *     "text.shout": {
 *       description: "Upper-cases text.",
 *       inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
 *       handler: ({ text }: { text: string }) => ({ text: text.toUpperCase() }),
 *     },
 *   },
 * });
 * await runAgent(agent); // certificate, NATS and registry from AGENTMESH_* and NATS_URL
 */
export {
  AgentError,
  type AgentErrorOptions,
  isAgentError,
  nonRetryable,
} from "./agent-error.js";
export {
  type AgentConnection,
  type AgentConnectionOptions,
  connectAgent,
} from "./connect-agent.js";
export {
  type AgentDefinition,
  type AgentDefinitionInput,
  agentCard,
  defineAgent,
  type JsonSchema,
  type SideEffectName,
  type SkillContext,
  type SkillDefinition,
} from "./define-agent.js";
export { type GrpcRegistryLinkOptions, grpcRegistryLink } from "./grpc-registry-link.js";
export type { AgentStatus, LeasePhase } from "./lease-lifecycle.js";
export {
  type AgentLiveness,
  noopRegistryLink,
  type RegisterOptions,
  type Registration,
  type RegistryLink,
} from "./registry-link.js";
export { type RunAgentOptions, type RunningAgent, runAgent } from "./run-agent.js";
export { testSkillContext } from "./test-context.js";
