/**
 * What stands between a public request and a handler: authentication and
 * admission (`admitCaller`: run by the request check at the edge before the
 * body is decoded, else by the interceptor, so it covers every public method,
 * streams included) and the policy check (`authorize`, in every handler,
 * because the policy needs the decoded request). Failures are thrown as
 * `MeshError`s; `errorInterceptor` maps them for the wire.
 *
 * The policy is asked exactly as an internal service would ask it, with the
 * gateway as the peer and the caller as the principal, so a call the
 * receiving service would refuse is refused here first, without a hop.
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import {
  createContextKey,
  type HandlerContext,
  type Interceptor,
  type StreamResponse,
} from "@connectrpc/connect";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import type { Logger } from "../lib/log/logger.js";
import { checkMessage } from "../lib/proto/validate-message.js";
import type { Authorizer, PeerIdentity } from "../lib/rpc/authorizer.js";
import { emitSecurityEvent } from "../lib/siem/siem.js";
import { activeSpanContext } from "../lib/telemetry/trace-context.js";
import type { Authenticate } from "./authenticate.js";
import { inputErrorKey } from "./request-validation.js";
import type { TenantLimits } from "./tenant-limits.js";

/** The authenticated caller of the current call. */
export const principalContextKey = createContextKey<Principal | undefined>(undefined, {
  description: "principal",
});

export interface GuardOptions {
  authenticate: Authenticate;
  limits: TenantLimits;
  /**
   * The policy on public calls. The gateway passes its authorizer observed by
   * the console's recent decisions (`observeDecisions`), so each is recorded
   * with what the policy read.
   */
  authorizer: Authorizer;
  /** The gateway's own identity, the peer the policy sees. */
  peer: PeerIdentity;
  /** Called for every denial (the audit log); must not throw. */
  onDenied?: (denial: { principal: Principal; method: DescMethod; reason: string }) => void;
  log: Logger;
}

/** Authenticates the caller of a request and takes one token of its tenant's rate. */
export async function admitCaller(options: GuardOptions, headers: Headers): Promise<Principal> {
  const principal = await options.authenticate(headers).catch((err: unknown) => {
    emitSecurityEvent({
      kind: "auth.failure",
      identity: credentialHint(headers),
      traceId: activeSpanContext()?.traceId ?? null,
      message: err instanceof Error ? err.message : String(err),
    });
    throw err;
  });
  await options.limits.admit(principal.tenantId);
  return principal;
}

/**
 * Admits the caller unless the edge did (see `request-validation.ts`), throws
 * what the edge refused, counts streams; puts the principal into the call's values.
 */
export function guardInterceptor(options: GuardOptions): Interceptor {
  const { limits } = options;
  return (next) => async (req) => {
    const inputError = req.contextValues.get(inputErrorKey);
    if (inputError) throw inputError;
    if (req.contextValues.get(principalContextKey) === undefined) {
      req.contextValues.set(principalContextKey, await admitCaller(options, req.header));
    }
    const principal = req.contextValues.get(principalContextKey) as Principal;
    if (
      req.method.methodKind !== "server_streaming" &&
      req.method.methodKind !== "bidi_streaming"
    ) {
      return next(req);
    }
    const release = await limits.openStream(principal.tenantId);
    try {
      const res = (await next(req)) as StreamResponse;
      return { ...res, message: releasing(res.message, release) };
    } catch (err) {
      release();
      throw err;
    }
  };
}

async function* releasing<T>(messages: AsyncIterable<T>, release: () => void): AsyncIterable<T> {
  try {
    yield* messages;
  } finally {
    release();
  }
}

/** The principal of the current call (set by the interceptor); UNAUTHENTICATED if missing. */
export function principalOf(ctx: HandlerContext): Principal {
  const principal = ctx.values.get(principalContextKey);
  if (!principal) throw new MeshError(Code.Unauthenticated, "not authenticated");
  return principal;
}

/**
 * Fills an empty top-level `tenant_id` with the caller's tenant, so clients
 * need not repeat it; checks the request against the contract's
 * `buf.validate` rules (INVALID_ARGUMENT naming each field, the same check
 * every service runs); then asks the policy. Throws PERMISSION_DENIED with
 * the policy's reason.
 */
export async function authorize(
  options: GuardOptions,
  method: DescMethod,
  request: Message,
  principal: Principal,
): Promise<void> {
  const tenantField = tenantFieldOf(method);
  if (tenantField !== undefined) {
    const r = request as unknown as Record<string, unknown>;
    if (r[tenantField] === "") r[tenantField] = principal.tenantId;
  }
  checkMessage(method.input, request);
  const decision = await options.authorizer({
    peer: options.peer,
    principal,
    method,
    request,
  });
  if (decision.allow) return;
  const name = `${method.parent.typeName}/${method.name}`;
  options.onDenied?.({ principal, method, reason: decision.reason });
  options.log.info(
    {
      tenantId: principal.tenantId,
      subject: principal.subject,
      method: name,
      reason: decision.reason,
    },
    "policy denied a public call",
  );
  throw new MeshError(Code.PermissionDenied, decision.reason);
}

/** Who claimed to call, without the secret: an API key's id, else nothing. */
function credentialHint(headers: Headers): string | null {
  const raw = headers.get("authorization")?.replace(/^Bearer\s+/i, "") ?? headers.get("x-api-key");
  const keyId = /^am_([A-Za-z0-9]{1,64})_/.exec(raw?.trim() ?? "")?.[1];
  return keyId ? `key:${keyId}` : null;
}

const tenantFields = new WeakMap<DescMethod, string | null>();

function tenantFieldOf(method: DescMethod): string | undefined {
  let field = tenantFields.get(method);
  if (field === undefined) {
    const f = method.input.fields.find(
      (x) => x.name === "tenant_id" && x.fieldKind === "scalar" && x.oneof === undefined,
    );
    field = f ? f.localName : null;
    tenantFields.set(method, field);
  }
  return field ?? undefined;
}
