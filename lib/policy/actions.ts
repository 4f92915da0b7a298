/**
 * Policy questions that are not RPCs: the mesh asks them in-process with the
 * same engine, input shape and decision log as a call.
 *
 * **Dispatch** (`agentmesh.v1.ExecutorService/DispatchStep`, `method.kind`
 * `"action"`): before the executor publishes a step's job it asks whether
 * it may dispatch capability C for goal G of kind K in tenant T, submitted
 * by S. The peer is the executor itself; `principal` is who the goal acts
 * for, as stored with it at SubmitGoal (a child goal has its parent's): the
 * gateway's principal (`tenant_id`, `subject`) or, for a goal a mesh identity
 * submitted directly, its SPIFFE ID as `subject` and the goal's tenant. Its
 * `roles` are the principal's roles as at submission (kept with the goal,
 * empty for goals stored before; a stored goal keeps running after a key's
 * roles change). `resource.auth_scope` and `resource.side_effect` are the
 * capability's declared metadata (the tool named like it), "" when none. The raw stored value
 * is `request.submitted_by`. Goals stored before the submitter was kept have
 * no `principal`. The planner asks the same question for every step of a
 * playbook it is asked to store (no goal, no principal), so a playbook that
 * could never run is refused up front.
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
  /** Who the goal acts for (`GoalRecord.submittedBy`: `<tenant>/<subject>` or a SPIFFE ID). */
  submittedBy?: string;
  /** That principal's roles at submission (`GoalRecord.submitterRoles`). */
  submitterRoles?: readonly string[];
  /** The capability's declared scope (the tool named like it); "" or absent: none. */
  authScope?: string;
  /** The capability's declared side effect: `read_only`, `idempotent`, `destructive`; "" or absent: none. */
  sideEffect?: string;
}

/** The input document of the dispatch action. */
export function dispatchInput(q: DispatchQuestion, now = Date.now()): PolicyInput {
  const request: PolicyInput["request"] = { step_id: q.stepId, capability: q.capability };
  if (q.attempt) request.attempt = q.attempt;
  if (q.strategy) request.strategy = q.strategy;
  if (q.submittedBy) request.submitted_by = q.submittedBy;
  return {
    peer: {
      spiffe_id: q.executor.spiffeId,
      trust_domain: q.executor.trustDomain,
      namespace: q.executor.namespace,
      name: q.executor.name,
    },
    ...(q.submittedBy
      ? { principal: submitterPrincipal(q.submittedBy, q.tenantId, q.submitterRoles) }
      : {}),
    method: { ...dispatchAction },
    resource: {
      tenant_id: q.tenantId,
      goal_id: q.goalId,
      goal_kind: q.goalKind,
      capability: q.capability,
      auth_scope: q.authScope ?? "",
      side_effect: q.sideEffect ?? "",
    },
    request,
    time: { unix_ms: now },
  };
}

/**
 * The stored submitter as the input's `principal`: `<tenant>/<subject>` (a
 * delegated principal; tenant ids have no `/`) or a SPIFFE ID (a mesh
 * identity, acting in the goal's tenant).
 */
export function submitterPrincipal(
  submittedBy: string,
  goalTenantId: string,
  roles: readonly string[] = [],
): NonNullable<PolicyInput["principal"]> {
  const slash = submittedBy.indexOf("/");
  if (submittedBy.startsWith("spiffe://") || slash <= 0) {
    return { tenant_id: goalTenantId, subject: submittedBy, roles: [] };
  }
  return {
    tenant_id: submittedBy.slice(0, slash),
    subject: submittedBy.slice(slash + 1),
    roles: [...roles],
  };
}
