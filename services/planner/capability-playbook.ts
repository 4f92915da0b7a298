/**
 * Single capabilities as goals: a goal of kind `capability.<name>` runs the
 * capability `<name>` as one step, its input the goal's input as given (the
 * MCP endpoint's capability tools). The playbook is made per goal: its input
 * schema is the skill's on a live agent's card, and its one step's input is
 * the goal's input with every `${` escaped, so the caller's strings stay
 * literal through the template passes (the planner's, the executor's). Who may submit such a goal is the policy's (`RunCapability`,
 * authz.rego); the capability's own scope and rate limit hold at dispatch as
 * for any step. A tenant cannot shadow these kinds with a playbook.
 *
 * @example
 * capabilityOfKind("capability.text.upper"); // "text.upper"
 * capabilityPlaybook("acme", "text.upper", agents, { text: "hi" });
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import { type Playbook, PlaybookSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import type { Agent } from "../../gen/agentmesh/v1/registry_pb.js";
import { escapeDeep } from "../../lib/plan/template.js";

export const capabilityKindPrefix = "capability.";

/** The capability a goal kind runs alone, or undefined for a playbook's kind. */
export function capabilityOfKind(goalKind: string): string | undefined {
  if (!goalKind.startsWith(capabilityKindPrefix)) return undefined;
  const capability = goalKind.slice(capabilityKindPrefix.length);
  return capability === "" ? undefined : capability;
}

/** The one-step playbook of a capability goal (agents: the live ones offering it, any order). */
export function capabilityPlaybook(
  tenantId: string,
  capability: string,
  agents: readonly Agent[],
  input: JsonObject | undefined,
): Playbook {
  const skill = agents
    .flatMap((a) => a.card?.skills ?? [])
    .find((s) => s.capability === capability && s.inputSchema !== undefined);
  return create(PlaybookSchema, {
    tenantId,
    goalKind: `${capabilityKindPrefix}${capability}`,
    description: skill?.description || `run the capability ${capability} once`,
    ...(skill?.inputSchema ? { inputSchema: skill.inputSchema } : {}),
    strategies: [
      {
        name: "direct",
        description: `One ${capability} step.`,
        steps: [
          {
            stepId: "run",
            name: capability,
            capability,
            input: escapeDeep(input ?? {}) as JsonObject,
          },
        ],
      },
    ],
  });
}
