/**
 * The one declaration of what the outside world may call. Everything else in
 * the gateway (routing, forwarding, reflection, the SDK) is derived from this
 * list, so making an RPC public is a one-line change here.
 *
 * @example
 * for (const { method, upstream } of publicMethods()) console.log(upstream, method.name);
 */
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { AdminService } from "../gen/agentmesh/v1/admin_pb.js";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";

/** The internal services the gateway forwards to, by service account name. */
export type Upstream = "executor" | "registry" | "planner" | "learning";

export interface PublicService {
  service: DescService;
  /** Where calls go: an internal service, or `gateway` for services the gateway implements itself. */
  upstream: Upstream | "gateway";
  /** Method names (as in the .proto) that are public, or "*" for all. */
  methods: readonly string[] | "*";
}

/** The public surface. */
export const publicApi: readonly PublicService[] = [
  { service: ExecutorService, upstream: "executor", methods: "*" },
  {
    service: RegistryService,
    upstream: "registry",
    methods: ["GetAgent", "ListAgents", "FindAgents", "WatchAgents", "ListTools"],
  },
  {
    service: PlannerService,
    upstream: "planner",
    methods: ["ListPlaybooks", "GetPlaybook", "PutPlaybook", "DeletePlaybook", "ExplainPlan"],
  },
  {
    service: LearningService,
    upstream: "learning",
    methods: [
      "GetStrategyStats",
      "ListExperiences",
      "GetAgentReliability",
      "TriggerTraining",
      "RollbackParameters",
    ],
  },
  // Authentication data belongs to the gateway, so it serves AdminService itself.
  { service: AdminService, upstream: "gateway", methods: "*" },
];

export interface PublicMethod {
  method: DescMethod;
  upstream: Upstream | "gateway";
}

/** Every public method with its destination; throws if the list names a method that does not exist. */
export function publicMethods(api: readonly PublicService[] = publicApi): PublicMethod[] {
  const out: PublicMethod[] = [];
  for (const { service, upstream, methods } of api) {
    if (methods === "*") {
      for (const method of service.methods) out.push({ method, upstream });
      continue;
    }
    for (const name of methods) {
      const method = service.methods.find((m) => m.name === name);
      if (!method) throw new Error(`public API names unknown method ${service.typeName}/${name}`);
      out.push({ method, upstream });
    }
  }
  return out;
}

/** The services that have at least one public method (for reflection and the SDK). */
export function publicServices(api: readonly PublicService[] = publicApi): DescService[] {
  return api.map((s) => s.service);
}
