/**
 * Results bound to identity. On a bus whose server vouches for publishers
 * (NATS over mutual TLS with the permissions `agentmesh nats config`
 * generates), a result arrives on `<prefix>.results.<publisher>.<goal>` and
 * only `<publisher>` could have sent it there. The executor then applies it
 * only when the policy grants that identity the capability of the step it
 * reports on — the same grant that lets an agent register a card offering the
 * capability — so an agent's stolen key cannot finish another capability's
 * steps. What is refused is audited and counted by the caller.
 *
 * @example
 * const mayServe = policyResultAuthority(runtime.authorizer, runtime.spiffeId);
 * resultRefusal(state, result, "agent-text", mayServe); // "agent-text may not serve shell.exec"
 */
import { create } from "@bufbuild/protobuf";
import { Counter, type Registry } from "prom-client";
import type { StepResult } from "../../gen/agentmesh/v1/jobs_pb.js";
import { RegisterAgentRequestSchema, RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { tryParseSpiffeId } from "../../lib/identity/spiffe.js";
import type { Authorizer } from "../../lib/rpc/authorizer.js";
import type { GoalState } from "./domain/goal-state.js";

/** Whether `publisher` (an identity name) may report results of `capability`. */
export type ResultAuthority = (publisher: string, capability: string) => boolean | Promise<boolean>;

/** Asks the policy whether `publisher` is granted `capability` (its RegisterAgent rule). */
export function policyResultAuthority(
  authorizer: Authorizer,
  spiffeIdOf: (name: string) => string,
): ResultAuthority {
  return async (publisher, capability) => {
    let peer: ReturnType<typeof tryParseSpiffeId>;
    try {
      peer = tryParseSpiffeId(spiffeIdOf(publisher));
    } catch {
      return false; // not an identity name at all
    }
    if (!peer) return false;
    const decision = await authorizer({
      peer,
      principal: undefined,
      method: RegistryService.method.registerAgent,
      request: create(RegisterAgentRequestSchema, {
        card: { name: publisher, skills: [{ capability }] },
      }),
    });
    return decision.allow;
  };
}

/**
 * Why `publisher` may not report `result` on the goal as it stands, or
 * undefined when it may. A result for a step the goal does not have is left
 * to the reducer (which ignores it).
 */
export async function resultRefusal(
  state: GoalState,
  result: StepResult,
  publisher: string | undefined,
  mayServe: ResultAuthority,
): Promise<string | undefined> {
  const step = state.steps[result.stepId]?.spec;
  if (!step) return undefined;
  const who = publisher ?? "an unnamed publisher";
  if (step.capability === "") return `${who} reported on sub-goal step ${step.stepId}`;
  if (publisher === undefined || !(await mayServe(publisher, step.capability))) {
    return `${who} may not serve ${step.capability} (step ${step.stepId})`;
  }
  return undefined;
}

/** `agentmesh_executor_results_refused_total`: results refused because of their publisher. */
export function resultsRefusedCounter(registry: Registry): () => void {
  const name = "agentmesh_executor_results_refused_total";
  const counter =
    (registry.getSingleMetric(name) as Counter | undefined) ??
    new Counter({
      name,
      help: "Step results refused because their publisher may not serve the step's capability.",
      registers: [registry],
    });
  return () => counter.inc();
}
