/**
 * The MCP tools for single capabilities: every capability a live agent offers
 * becomes the tool `capability.<name>` (the goal kind that runs it alone, see
 * `services/planner/capability-playbook.ts`) when the policy would let the
 * caller submit that goal: by default only roles granted
 * `ExecutorService/RunCapability` see any. Its input schema and description
 * are the skill's on an agent card; its annotations come from the side effect
 * declared on the tool named like the capability (ListTools).
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import { ExecutorService, SubmitGoalRequestSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import {
  ListAgentsRequestSchema,
  type ListAgentsResponse,
  ListToolsRequestSchema,
  type ListToolsResponse,
  RegistryService,
  SideEffect,
} from "../../gen/agentmesh/v1/registry_pb.js";
import type { PublicCaller } from "../protocols/public-caller.js";

const registry = (name: string) => RegistryService.methods.find((m) => m.name === name)!;
const listAgents = registry("ListAgents");
const listTools = registry("ListTools");
const submitGoal = ExecutorService.methods.find((m) => m.name === "SubmitGoal")!;

/** The goal kind that runs a capability alone. */
export const capabilityKind = (capability: string) => `capability.${capability}`;

/** Goal kinds are at most this long (the contract's `SubmitGoalRequest.kind`). */
const maxKindLength = 128;
/** Pages of live agents read at most for one listing. */
const maxPages = 10;

/** The capability tools the principal may call, sorted by name. */
export async function capabilityTools(
  caller: PublicCaller,
  principal: Principal,
  signal: AbortSignal,
): Promise<Tool[]> {
  const ctx = { principal, signal };
  const skills = new Map<string, { description: string; inputSchema?: JsonObject }>();
  let pageToken = "";
  for (let page = 0; page < maxPages; page++) {
    const res = await caller.unary<ListAgentsResponse>(
      "registry",
      listAgents,
      create(ListAgentsRequestSchema, { pageSize: 1000, pageToken }),
      ctx,
    );
    for (const agent of res.agents) {
      for (const skill of agent.card?.skills ?? []) {
        const known = skills.get(skill.capability);
        if (known?.inputSchema) continue;
        skills.set(skill.capability, {
          description: known?.description || skill.description,
          ...(skill.inputSchema ? { inputSchema: skill.inputSchema } : {}),
        });
      }
    }
    pageToken = res.nextPageToken;
    if (!pageToken) break;
  }
  const runnable = await Promise.all(
    [...skills.keys()]
      .filter((c) => capabilityKind(c).length <= maxKindLength)
      .map(async (c) => {
        const request = create(SubmitGoalRequestSchema, {
          tenantId: principal.tenantId,
          kind: capabilityKind(c),
        });
        return (await caller.allows(submitGoal, request, principal)) ? c : undefined;
      }),
  );
  const allowed = runnable.filter((c): c is string => c !== undefined).sort();
  if (allowed.length === 0) return [];
  const { tools } = await caller.unary<ListToolsResponse>(
    "registry",
    listTools,
    create(ListToolsRequestSchema, {}),
    ctx,
  );
  const sideEffects = new Map(tools.map((t) => [t.name, t.sideEffect]));
  return allowed.map((capability) => {
    const skill = skills.get(capability)!;
    const annotations = annotationsOf(sideEffects.get(capability));
    return {
      name: capabilityKind(capability),
      description: skill.description || `run the capability ${capability} once`,
      inputSchema: { type: "object" as const, ...(skill.inputSchema ?? {}) },
      ...(annotations ? { annotations } : {}),
    };
  });
}

/** MCP tool annotations of a declared side effect; none when undeclared. */
function annotationsOf(sideEffect: SideEffect | undefined): Tool["annotations"] {
  switch (sideEffect) {
    case SideEffect.READ_ONLY:
      return { readOnlyHint: true, idempotentHint: true, destructiveHint: false };
    case SideEffect.IDEMPOTENT:
      return { readOnlyHint: false, idempotentHint: true, destructiveHint: false };
    case SideEffect.DESTRUCTIVE:
      return { readOnlyHint: false, idempotentHint: false, destructiveHint: true };
    default:
      return undefined;
  }
}
