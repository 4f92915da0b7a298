/**
 * Helpers for tests and benchmarks of the policy: the committed bundle's
 * paths, peers by name, and requests filled generically from descriptors.
 *
 * @example
 * const engine = await openPolicyEngine({ wasmPath: committedWasmPath, watch: false });
 * authorize({ peer: meshPeer("executor"), principal: undefined, method, request: sampleRequest(method) });
 */

import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { AdminService } from "../../gen/agentmesh/v1/admin_pb.js";
import { type Principal, PrincipalSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { packagePath } from "../config/package-root.js";
import type { PeerIdentity } from "../rpc/authorizer.js";
import { methodPlan } from "./input.js";

/** The committed compiled policy and its data. */
export const committedWasmPath = packagePath("policies", "policy.wasm");
export const committedDataPath = packagePath("policies", "data.json");

/** The mesh's own services. */
export const meshServices: readonly DescService[] = [
  RegistryService,
  PlannerService,
  ExecutorService,
  LearningService,
  AdminService,
];

/** Every method of the mesh's services. */
export const meshMethods: readonly DescMethod[] = meshServices.flatMap((s) => s.methods);

/** A peer identity of the given service account in the default trust domain and namespace. */
export function meshPeer(name: string, trustDomain = "agentmesh.local"): PeerIdentity {
  return {
    spiffeId: `spiffe://${trustDomain}/ns/agentmesh/sa/${name}`,
    trustDomain,
    namespace: "agentmesh",
    name,
  };
}

/** A principal message. */
export function principal(tenantId: string, subject: string, roles: string[]): Principal {
  return create(PrincipalSchema, { tenantId, subject, roles });
}

export interface SampleValues {
  tenant_id?: string;
  goal_id?: string;
  agent_id?: string;
  capability?: string;
  /** For requests with a list of capabilities (RegisterAgent's card.skills). */
  capabilities?: string[];
}

/**
 * A request for `method` with every resource field the policy reads set
 * (wherever it lives), built from the descriptor alone.
 */
export function sampleRequest(method: DescMethod, values: SampleValues = {}): Message {
  const {
    tenant_id = "acme",
    goal_id = "g-1",
    agent_id = "a-1",
    capability = "text.summarize",
    capabilities = ["text.summarize"],
  } = values;
  const byName: Record<string, string> = { tenant_id, goal_id, agent_id, capability };
  const plan = methodPlan(method);
  const init: Record<string, unknown> = {};
  for (const { key, path } of plan.fields) setPath(init, path, byName[key]);
  if (plan.capabilities) {
    setPath(
      init,
      plan.capabilities.path,
      capabilities.map((c) => ({ [plan.capabilities!.element]: c })),
    );
  }
  return create(method.input, init as never) as Message;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    node[key] ??= {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** A descriptor-shaped stand-in for methods of services we do not generate (health, reflection). */
export function foreignMethod(service: string, name: string): DescMethod {
  return {
    kind: "rpc",
    name,
    parent: { typeName: service },
    methodKind: "unary",
    input: { typeName: `${service}Request`, fields: [] },
  } as unknown as DescMethod;
}
