/**
 * Sample calls built from the mesh's descriptors: its services and methods,
 * peers by name, principals, and a request for any method with every
 * resource field the policy reads set. Used by the reload corpus
 * (`corpus.ts`), tests and benchmarks.
 *
 * @example
 * authorize({ peer: meshPeer("executor"), principal: undefined, method, request: sampleRequest(method) });
 */
import { create, type DescMethod, type DescService, type Message } from "@bufbuild/protobuf";
import { AdminService } from "../../gen/agentmesh/v1/admin_pb.js";
import { type Principal, PrincipalSchema } from "../../gen/agentmesh/v1/common_pb.js";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import type { PeerIdentity } from "../rpc/authorizer.js";
import { methodPlan, type PolicyResource } from "./input.js";

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

/** The values a sample request carries: the policy input's resource fields. */
export type SampleValues = PolicyResource;

/**
 * A request for `method` with every resource field the policy reads set
 * (wherever it lives), built from the descriptor alone.
 */
export function sampleRequest(method: DescMethod, values: SampleValues = {}): Message {
  const {
    tenant_id = "acme",
    goal_id = "g-1",
    goal_kind = "summarize",
    agent_id = "a-1",
    capability = "text.summarize",
    capabilities = ["text.summarize"],
  } = values;
  const byName: Record<string, string> = { tenant_id, goal_id, goal_kind, agent_id, capability };
  const plan = methodPlan(method);
  const init: Record<string, unknown> = {};
  for (const { key, path } of plan.fields) setPath(init, path, byName[key]);
  const first = plan.capabilities[0];
  if (first) {
    // The outermost list holds one element per capability; deeper lists one each.
    const listAt = first.steps.findIndex((s) => s.list);
    const below = (i: number, cap: string): unknown => {
      const step = first.steps[i];
      if (step === undefined) return cap;
      const v = below(i + 1, cap);
      return { [step.key]: step.list ? [v] : v };
    };
    const elements = capabilities.map((c) => below(listAt + 1, c));
    setPath(
      init,
      first.steps.slice(0, listAt + 1).map((s) => s.key),
      elements,
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
