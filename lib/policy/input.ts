/**
 * The OPA input document for one call, built generically from the method's
 * protobuf-es descriptor and the request message, so a new RPC needs no
 * policy plumbing: resource fields are found by *name* (`tenant_id`,
 * `goal_id`, `agent_id`, `capability`) at the top of the request or a few
 * singular message fields down, and a repeated message whose elements carry a
 * `capability` (RegisterAgent's `card.skills[]`) becomes
 * `resource.capabilities`.
 *
 * Field paths are resolved once per method and cached, so building an input
 * costs a handful of property reads.
 *
 * @example
 * const input = buildPolicyInput({ peer, principal, method: ExecutorService.method.submitGoal, request });
 * // { peer: {...}, principal: {...}, method: { full: "agentmesh.v1.ExecutorService/SubmitGoal", ... },
 * //   resource: { tenant_id: "acme" }, time: { unix_ms: 1767225600000 } }
 */
import type { DescField, DescMessage, DescMethod, Message } from "@bufbuild/protobuf";
import type { AuthorizationRequest } from "../rpc/authorizer.js";

/** The document the policy decides on; wire (snake_case) names, as Rego authors see them. */
export interface PolicyInput {
  /** The verified peer; absent when the transport proved none (always denied). */
  peer?: {
    spiffe_id: string;
    trust_domain: string;
    namespace: string;
    /** Service account name: `executor`, `gateway`, `agent-text`, ... */
    name: string;
  };
  /** Principal the caller claims to act for; the policy decides whether to trust it. */
  principal?: { tenant_id: string; subject: string; roles: string[] };
  method: {
    /** e.g. `agentmesh.v1.ExecutorService` */
    service: string;
    /** e.g. `SubmitGoal` */
    name: string;
    /** e.g. `agentmesh.v1.ExecutorService/SubmitGoal` */
    full: string;
    kind: DescMethod["methodKind"];
  };
  /**
   * What the request names. A key is present exactly when the request type has
   * that field (empty string when unset), so `tenant_id` present means the
   * method is tenant-scoped.
   */
  resource: PolicyResource;
  /** Evaluation time. */
  time: { unix_ms: number };
}

export interface PolicyResource {
  tenant_id?: string;
  goal_id?: string;
  agent_id?: string;
  capability?: string;
  /** Every `capability` of a repeated message field, e.g. RegisterAgent's `card.skills[]`. */
  capabilities?: string[];
}

/** Resource fields looked up by proto field name. */
export const resourceFieldNames = ["tenant_id", "goal_id", "agent_id", "capability"] as const;
type ResourceFieldName = (typeof resourceFieldNames)[number];

/** How deep (in singular message fields) resource fields are searched; 0 is the request itself. */
const maxDepth = 2;

interface FieldPath {
  key: ResourceFieldName;
  /** localNames from the request down to the string field. */
  path: string[];
}

interface ListPath {
  /** localNames down to the repeated message field. */
  path: string[];
  /** localName of the `capability` field in each element. */
  element: string;
}

/** Per-method facts computed once: names and where each resource field lives. */
export interface MethodPlan {
  service: string;
  name: string;
  full: string;
  kind: DescMethod["methodKind"];
  fields: FieldPath[];
  capabilities: ListPath | undefined;
}

const plans = new WeakMap<DescMethod, MethodPlan>();

/** The cached plan of a method (computed on first use). */
export function methodPlan(method: DescMethod): MethodPlan {
  let plan = plans.get(method);
  if (plan === undefined) {
    plan = compilePlan(method);
    plans.set(method, plan);
  }
  return plan;
}

function compilePlan(method: DescMethod): MethodPlan {
  const service = method.parent.typeName;
  const fields: FieldPath[] = [];
  let capabilities: ListPath | undefined;
  const found = new Set<string>();
  // Breadth first, so the shallowest field of a name wins (CreateTenant's
  // `tenant.tenant_id`, ChooseStrategy's `context.tenant_id`).
  let level: { message: DescMessage; path: string[] }[] = [{ message: method.input, path: [] }];
  for (let depth = 0; depth <= maxDepth && level.length > 0; depth++) {
    const next: typeof level = [];
    for (const { message, path } of level) {
      for (const field of message.fields) {
        if (field.oneof !== undefined) continue; // oneof members live under the oneof's name
        const here = [...path, field.localName];
        if (isStringScalar(field) && isResourceName(field.name) && !found.has(field.name)) {
          found.add(field.name);
          fields.push({ key: field.name, path: here });
        } else if (field.fieldKind === "message" && !isWellKnown(field.message)) {
          next.push({ message: field.message, path: here });
        } else if (
          capabilities === undefined &&
          field.fieldKind === "list" &&
          field.listKind === "message"
        ) {
          const cap = field.message.fields.find(
            (f) => f.name === "capability" && isStringScalar(f),
          );
          if (cap) capabilities = { path: here, element: cap.localName };
        }
      }
    }
    level = next;
  }
  // Fixed order so cache keys line up field by field.
  fields.sort((a, b) => resourceFieldNames.indexOf(a.key) - resourceFieldNames.indexOf(b.key));
  return {
    service,
    name: method.name,
    full: `${service}/${method.name}`,
    kind: method.methodKind,
    fields,
    capabilities,
  };
}

function isStringScalar(field: DescField): boolean {
  return field.fieldKind === "scalar" && field.scalar === 9; // ScalarType.STRING
}

function isResourceName(name: string): name is ResourceFieldName {
  return (resourceFieldNames as readonly string[]).includes(name);
}

function isWellKnown(message: DescMessage): boolean {
  return message.typeName.startsWith("google.protobuf.");
}

function read(message: unknown, path: readonly string[]): unknown {
  let value = message;
  for (const key of path) {
    if (value === undefined || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Reads the resource fields a plan names from a request (all keys present, "" when unset). */
export function readResource(plan: MethodPlan, request: Message | undefined): PolicyResource {
  const resource: PolicyResource = {};
  for (const { key, path } of plan.fields) {
    const value = request === undefined ? undefined : read(request, path);
    resource[key] = typeof value === "string" ? value : "";
  }
  if (plan.capabilities) {
    const list = request === undefined ? undefined : read(request, plan.capabilities.path);
    const caps: string[] = [];
    if (Array.isArray(list)) {
      for (const item of list) {
        const cap = (item as Record<string, unknown>)[plan.capabilities.element];
        if (typeof cap === "string") caps.push(cap);
      }
    }
    resource.capabilities = caps;
  }
  return resource;
}

/** Builds the input document for one call. `now` defaults to `Date.now()`. */
export function buildPolicyInput(request: AuthorizationRequest, now = Date.now()): PolicyInput {
  const plan = methodPlan(request.method);
  return buildFromPlan(plan, request, now);
}

/** Like `buildPolicyInput` with the plan already at hand (the authorizer's hot path). */
export function buildFromPlan(
  plan: MethodPlan,
  request: AuthorizationRequest,
  now: number,
): PolicyInput {
  const input: PolicyInput = {
    method: { service: plan.service, name: plan.name, full: plan.full, kind: plan.kind },
    resource: readResource(plan, request.request),
    time: { unix_ms: now },
  };
  const { peer, principal } = request;
  if (peer) {
    input.peer = {
      spiffe_id: peer.spiffeId,
      trust_domain: peer.trustDomain,
      namespace: peer.namespace,
      name: peer.name,
    };
  }
  if (principal) {
    input.principal = {
      tenant_id: principal.tenantId,
      subject: principal.subject,
      roles: [...principal.roles],
    };
  }
  return input;
}

// Separates the parts of a cache key; a part containing it is never cached,
// so two different inputs can never share a key.
const sep = "\u0000";
/** Inputs whose key would be longer are not cached (bounded memory per entry). */
const maxKeyLength = 2048;

/**
 * The decision cache key of an input: everything the policy may look at
 * except `time`. Undefined when the input must not be cached (a part holds
 * the separator, or the key would be long).
 */
export function decisionCacheKey(input: PolicyInput): string | undefined {
  // Straight-line concatenation: this runs on every call and must cost well
  // under a microsecond. Lists carry their length, so parts cannot shift.
  let key = input.peer ? input.peer.spiffe_id : "";
  if (key.includes(sep)) return undefined;
  key += sep + input.method.full;
  const p = input.principal;
  if (p) {
    if (p.tenant_id.includes(sep) || p.subject.includes(sep)) return undefined;
    key += `${sep}P${sep}${p.tenant_id}${sep}${p.subject}${sep}${p.roles.length}`;
    for (const role of p.roles) {
      if (role.includes(sep)) return undefined;
      key += sep + role;
    }
  }
  const r = input.resource;
  for (const name of resourceFieldNames) {
    const v = r[name];
    if (v === undefined) {
      key += `${sep}-`;
    } else {
      if (v.includes(sep)) return undefined;
      key += `${sep}=${v}`;
    }
  }
  const caps = r.capabilities;
  if (caps) {
    key += sep + caps.length;
    for (const cap of caps) {
      if (cap.includes(sep)) return undefined;
      key += sep + cap;
    }
  }
  return key.length > maxKeyLength ? undefined : key;
}
