/**
 * Policy questions that are not RPCs: the mesh asks them in-process with the
 * same engine, input shape and decision log as a call.
 *
 * **Dispatch** (`agentmesh.v1.ExecutorService/DispatchStep`, `method.kind`
 * `"action"`): before the executor publishes a step's job it asks whether
 * it may dispatch capability C for goal G of kind K in tenant T. The peer is
 * the executor itself; there is no principal (the submitter was checked at
 * SubmitGoal). The planner asks the same question for every step of a
 * playbook it is asked to store, so a playbook that could never run is
 * refused up front.
 *
 * @example
 * const input = dispatchInput({ executor: meshPeer("executor"), tenantId: "acme", goalId, goalKind: "ops", capability: "shell.exec", stepId: "run" });
 * const decision = engine.decide(input);
 */
import type { PeerIdentity } from "../rpc/authorizer.js";
import type { PolicyInput } from "./input.js";

/** The method name of the dispatch action, as policies match it. */
export const dispatchAction = {
  service: "agentmesh.v1.ExecutorService",
  name: "DispatchStep",
  full: "agentmesh.v1.ExecutorService/DispatchStep",
  kind: "action",
} as const;

export interface DispatchQuestion {
  /** The identity that publishes jobs (the executor). */
  executor: PeerIdentity;
  tenantId: string;
  /** Empty when asked for a playbook before any goal exists. */
  goalId: string;
  goalKind: string;
  capability: string;
  stepId: string;
  /** Attempt number (0 when asked for a playbook). */
  attempt?: number;
  /** The playbook strategy the step belongs to, when known. */
  strategy?: string;
}

/** The input document of the dispatch action. */
export function dispatchInput(q: DispatchQuestion, now = Date.now()): PolicyInput {
  const request: PolicyInput["request"] = { step_id: q.stepId, capability: q.capability };
  if (q.attempt) request.attempt = q.attempt;
  if (q.strategy) request.strategy = q.strategy;
  return {
    peer: {
      spiffe_id: q.executor.spiffeId,
      trust_domain: q.executor.trustDomain,
      namespace: q.executor.namespace,
      name: q.executor.name,
    },
    method: { ...dispatchAction },
    resource: {
      tenant_id: q.tenantId,
      goal_id: q.goalId,
      goal_kind: q.goalKind,
      capability: q.capability,
    },
    request,
    time: { unix_ms: now },
  };
}
