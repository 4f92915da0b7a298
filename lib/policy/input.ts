/**
 * The OPA input document for one call, built generically from the method's
 * protobuf-es descriptor and the request message, so a new RPC needs no
 * policy plumbing: resource fields are found by *name* (`tenant_id`,
 * `goal_id`, `goal_kind`, `agent_id`, `capability`; the request's own `kind`
 * is its goal kind) at the top of the request or a few singular message
 * fields down; every `capability` inside repeated messages
 * (RegisterAgent's `card.skills[]`, PutPlaybook's
 * `playbook.strategies[].steps[]`) becomes `resource.capabilities`; and
 * `request` is the bounded view of the whole message (`request-view.ts`).
 *
 * Field paths are resolved once per method and cached.
 *
 * @example
 * const input = buildPolicyInput({ peer, principal, method: ExecutorService.method.submitGoal, request });
 * // { peer: {...}, principal: {...}, method: { full: "agentmesh.v1.ExecutorService/SubmitGoal", ... },
 * //   resource: { tenant_id: "acme" }, time: { unix_ms: 1767225600000 } }
 */
import type { DescField, DescMessage, DescMethod, Message } from "@bufbuild/protobuf";
import type { AuthorizationRequest } from "../rpc/authorizer.js";
import { type JsonLike, requestView } from "./request-view.js";

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
  /**
   * Principal the caller claims to act for; the policy decides whether to trust it.
   * For the dispatch action: who the goal acts for, as stored with it (`actions.ts`).
   */
  principal?: { tenant_id: string; subject: string; roles: string[] };
  method: {
    /** e.g. `agentmesh.v1.ExecutorService` */
    service: string;
    /** e.g. `SubmitGoal` */
    name: string;
    /** e.g. `agentmesh.v1.ExecutorService/SubmitGoal` */
    full: string;
    /** The RPC kind, or `action` for questions that are not calls (see `actions.ts`). */
    kind: DescMethod["methodKind"] | "action";
  };
  /**
   * What the request names. A key is present exactly when the request type has
   * that field (empty string when unset), so `tenant_id` present means the
   * method is tenant-scoped.
   */
  resource: PolicyResource;
  /** The request's fields, bounded (see `request-view.ts`); `{}` for streamed requests and actions without one. */
  request: { [key: string]: JsonLike };
  /** Present (true) when a bound cut something out of `request`. */
  request_truncated?: true;
  /**
   * RegisterAgent only, in the registry's second question once it has checked the
   * card's signature (ADR-015): `signature.status` is `valid`, `unsigned` or
   * `unknown_signer` (a signature that does not verify never reaches the policy).
   */
  card?: { name: string; version: string; signature: { status: string; signer: string } };
  /** Evaluation time. */
  time: { unix_ms: number };
}

export interface PolicyResource {
  tenant_id?: string;
  goal_id?: string;
  /** The goal kind: a `goal_kind` field, or the request's own `kind` (SubmitGoal, ListGoals). */
  goal_kind?: string;
  agent_id?: string;
  capability?: string;
  /**
   * Every `capability` inside repeated message fields, in order: RegisterAgent's
   * `card.skills[]`, PutPlaybook's `playbook.strategies[].steps[]`.
   */
  capabilities?: string[];
  /** The dispatch action only: the capability's declared scope ("" for none). */
  auth_scope?: string;
  /** The dispatch action only: its declared side effect (`read_only`, `idempotent`, `destructive`, ""). */
  side_effect?: string;
}

/** Resource fields looked up by proto field name. */
export const resourceFieldNames = [
  "tenant_id",
  "goal_id",
  "goal_kind",
  "agent_id",
  "capability",
] as const;
type ResourceFieldName = (typeof resourceFieldNames)[number];

/** How deep (in singular message fields) resource fields are searched; 0 is the request itself. */
const maxDepth = 2;
/** How deep (in message and list fields) capabilities are collected. */
const maxCapabilityDepth = 4;

interface FieldPath {
  key: ResourceFieldName;
  /** localNames from the request down to the string field. */
  path: string[];
}

/** Where capabilities live: localNames from the request, each marked when it is a list. */
export interface CapabilityPath {
  steps: { key: string; list: boolean }[];
}

/** Per-method facts computed once: names and where each resource field lives. */
export interface MethodPlan {
  service: string;
  name: string;
  full: string;
  kind: DescMethod["methodKind"];
  /** The request message type (for `input.request`). */
  input: DescMessage;
  fields: FieldPath[];
  /** Paths to `capability` fields below a list; empty when the request has none. */
  capabilities: CapabilityPath[];
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
        const key = depth === 0 && field.name === "kind" ? "goal_kind" : field.name;
        if (isStringScalar(field) && isResourceName(key) && !found.has(key)) {
          found.add(key);
          fields.push({ key, path: here });
        } else if (field.fieldKind === "message" && !isWellKnown(field.message)) {
          next.push({ message: field.message, path: here });
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
    input: method.input,
    fields,
    capabilities: capabilityPaths(method.input, [], false, 0),
  };
}

/** Paths to every string `capability` field that sits below at least one list. */
function capabilityPaths(
  message: DescMessage,
  steps: CapabilityPath["steps"],
  inList: boolean,
  depth: number,
): CapabilityPath[] {
  const out: CapabilityPath[] = [];
  for (const field of message.fields) {
    if (field.oneof !== undefined) continue;
    if (inList && field.name === "capability" && isStringScalar(field)) {
      out.push({ steps: [...steps, { key: field.localName, list: false }] });
    } else if (depth < maxCapabilityDepth && !isWellKnownField(field)) {
      if (field.fieldKind === "message") {
        out.push(
          ...capabilityPaths(
            field.message,
            [...steps, { key: field.localName, list: false }],
            inList,
            depth + 1,
          ),
        );
      } else if (field.fieldKind === "list" && field.listKind === "message") {
        out.push(
          ...capabilityPaths(
            field.message,
            [...steps, { key: field.localName, list: true }],
            true,
            depth + 1,
          ),
        );
      }
    }
  }
  return out;
}

function isWellKnownField(field: DescField): boolean {
  return (
    (field.fieldKind === "message" ||
      (field.fieldKind === "list" && field.listKind === "message")) &&
    isWellKnown(field.message)
  );
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
  if (plan.capabilities.length > 0) {
    const caps: string[] = [];
    if (request !== undefined) {
      for (const path of plan.capabilities) collect(request, path.steps, 0, caps);
    }
    resource.capabilities = caps;
  }
  return resource;
}

/** At most this many capabilities are collected from one request. */
const maxCapabilities = 256;

function collect(value: unknown, steps: CapabilityPath["steps"], i: number, out: string[]): void {
  if (value === undefined || value === null || out.length >= maxCapabilities) return;
  const step = steps[i];
  if (step === undefined) {
    if (typeof value === "string") out.push(value);
    return;
  }
  const next = (value as Record<string, unknown>)[step.key];
  if (!step.list) {
    collect(next, steps, i + 1, out);
  } else if (Array.isArray(next)) {
    for (const item of next) collect(item, steps, i + 1, out);
  }
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
  const view = requestView(plan.input, request.request);
  const input: PolicyInput = {
    method: { service: plan.service, name: plan.name, full: plan.full, kind: plan.kind },
    resource: readResource(plan, request.request),
    request: view.value,
    time: { unix_ms: now },
  };
  if (view.truncated) input.request_truncated = true;
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
  // The policy may read any request field; a cut view is never cached (it could hide a difference).
  if (input.request_truncated) return undefined;
  // JSON escapes the separator, so the request part cannot shift the others.
  key += sep + JSON.stringify(input.request);
  return key.length > maxKeyLength ? undefined : key;
}
