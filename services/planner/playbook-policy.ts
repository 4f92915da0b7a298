/**
 * The PutPlaybook check: a playbook is stored only if the executor would be
 * allowed to dispatch every capability its steps use, for this tenant and goal
 * kind. It asks the dispatch action (`lib/policy/actions.ts`) once per
 * distinct (strategy, capability), so a rule written for dispatch also
 * refuses the playbook up front, naming the step and capability.
 *
 * @example
 * const check = playbookPolicy({ check: runtime.policyCheck("planner", id), executor });
 * check("acme", playbook); // throws PERMISSION_DENIED for a step the policy refuses
 */
import type { Playbook } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { dispatchInput } from "../../lib/policy/actions.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import type { Decision, PeerIdentity } from "../../lib/rpc/authorizer.js";

/** Throws PERMISSION_DENIED when a step of `playbook` could not be dispatched for `tenantId`. */
export type PlaybookPolicy = (tenantId: string, playbook: Playbook) => void;

export function playbookPolicy(deps: {
  /** Decides and writes the decision log (`runtime.policyCheck`). */
  check: (input: PolicyInput) => Decision;
  /** The identity that will dispatch the steps: the executor. */
  executor: PeerIdentity;
}): PlaybookPolicy {
  return (tenantId, playbook) => {
    const asked = new Set<string>();
    for (const strategy of playbook.strategies) {
      for (const step of strategy.steps) {
        if (!step.capability) continue; // a sub-goal step: its own steps are checked when it runs
        const key = `${strategy.name}\u0000${step.capability}`;
        if (asked.has(key)) continue;
        asked.add(key);
        const decision = deps.check(
          dispatchInput({
            executor: deps.executor,
            tenantId,
            goalId: "",
            goalKind: playbook.goalKind,
            capability: step.capability,
            stepId: step.stepId,
            strategy: strategy.name,
          }),
        );
        if (!decision.allow) {
          throw new MeshError(
            Code.PermissionDenied,
            `playbook ${playbook.goalKind}: step "${step.stepId}" (strategy ${strategy.name}) may not use capability ${step.capability}: ${decision.reason}`,
            {
              details: {
                stepId: step.stepId,
                strategy: strategy.name,
                capability: step.capability,
              },
            },
          );
        }
      }
    }
  };
}
