/**
 * "No live agent offers X" is a passing state, not a verdict: agents restart,
 * leases lapse during an outage and come back. A goal the planner cannot plan
 * for that reason waits (still PENDING, with a `waitingForAgents` event) for
 * a bounded time — `agentWaitMs` from its acceptance, never past its deadline —
 * and is planned as soon as the agents are back; after that it fails with the
 * planner's reason.
 *
 * @example
 * const missing = missingCapabilitiesOf(err);
 * if (missing && now < waitUntil(state, agentWaitMs)) save(waitingTransition(state, missing, ...));
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { Code, type MeshError } from "../../lib/errors/mesh-error.js";
import type { ErrorData, GoalState, Transition } from "./domain/index.js";
import { toErrorInfo } from "./domain/index.js";

/** How long a goal waits for agents by default. */
export const defaultAgentWaitMs = 120_000;

/** The capabilities a planner refusal says no live agent offers; undefined for any other error. */
export function missingCapabilitiesOf(err: MeshError): string[] | undefined {
  if (err.code !== Code.FailedPrecondition) return undefined;
  const missing = err.details.missingCapabilities;
  if (!Array.isArray(missing) || missing.length === 0) return undefined;
  if (!missing.every((c): c is string => typeof c === "string")) return undefined;
  return [...missing].sort();
}

/** When a goal stops waiting for agents: `agentWaitMs` after it was accepted, or its deadline. */
export function waitUntil(state: GoalState, agentWaitMs: number): number {
  return Math.min(state.createdAtMs + agentWaitMs, state.deadlineMs);
}

/**
 * The transition that records that the goal waits: its next event and nothing
 * else. None when the last event already says it waits for the same capabilities.
 */
export function waitingTransition(
  state: GoalState,
  wait: { capabilities: string[]; until: number; reason: ErrorData; at: number },
  lastEvent: { type: string; capabilities: readonly string[] } | undefined,
): Transition | undefined {
  if (
    lastEvent?.type === "waitingForAgents" &&
    lastEvent.capabilities.join(",") === wait.capabilities.join(",")
  ) {
    return undefined;
  }
  const sequence = state.sequence + 1;
  const event = create(GoalEventSchema, {
    goalId: state.goalId,
    tenantId: state.tenantId,
    sequence: BigInt(sequence),
    time: timestampFromMs(wait.at),
    kind: {
      case: "waitingForAgents",
      value: {
        capabilities: wait.capabilities,
        until: timestampFromMs(wait.until),
        reason: toErrorInfo(wait.reason),
      },
    },
  });
  return { state: { ...state, sequence }, commands: [{ type: "emitEvent", event }] };
}
