/**
 * The public API as a protocol adapter (A2A, MCP) calls it: the same door as
 * a Connect client. `admit` authenticates the request's credentials and takes
 * one token of the tenant's rate (`admitCaller`); each `call` checks the
 * request's shape against the tenant's limits, asks the policy (`authorize`:
 * validation, tenant filled in, denials logged and audited) and forwards the
 * call over mTLS as the gateway carrying the principal, as `forward.ts` does
 * for Connect. A stream counts against the tenant's open streams until it ends.
 */
import { type DescMethod, type DescService, type Message, toBinary } from "@bufbuild/protobuf";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { type CallOptions, createClient, type MeshChannel } from "../../lib/rpc/client.js";
import { admitCaller, authorize, type GuardOptions } from "../guard.js";
import type { Upstream } from "../public-api.js";
import { protoShapeProblem } from "../request-shape.js";
import type { RequestLimits } from "../tenant-limits.js";

export interface PublicCallerOptions {
  guard: GuardOptions;
  channels: Readonly<Record<Upstream, MeshChannel>>;
  /** Deadline of a unary call. */
  defaultTimeoutMs: number;
}

export interface CallContext {
  principal: Principal;
  signal?: AbortSignal;
}

export interface PublicCaller {
  /** The caller of a request with these headers; UNAUTHENTICATED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION. */
  admit(headers: Headers): Promise<Principal>;
  /** What one request of the tenant may cost (after `admit`). */
  requestLimits(tenantId: string): RequestLimits;
  /**
   * Whether the policy would let the principal make this call (the request's
   * tenant as it names it): a question for deciding what to show, neither
   * audited nor kept as a decision; the call itself is still authorized.
   */
  allows(method: DescMethod, request: Message, principal: Principal): Promise<boolean>;
  /** One unary public call as `ctx.principal`. */
  unary<O extends Message>(
    upstream: Upstream,
    method: DescMethod,
    request: Message,
    ctx: CallContext,
  ): Promise<O>;
  /** One server-streaming public call; counts as an open stream of the tenant until it ends. */
  stream<O extends Message>(
    upstream: Upstream,
    method: DescMethod,
    request: Message,
    ctx: CallContext,
  ): AsyncIterable<O>;
}

export function createPublicCaller(options: PublicCallerOptions): PublicCaller {
  const { guard } = options;
  const clients = new Map<DescMethod, (req: Message, o: CallOptions) => unknown>();
  const clientFor = (upstream: Upstream, method: DescMethod) => {
    let call = clients.get(method);
    if (!call) {
      const service = { methods: [method] } as unknown as DescService;
      const client = createClient(service, options.channels[upstream]) as unknown as Record<
        string,
        (req: Message, o: CallOptions) => unknown
      >;
      call = client[method.localName];
      if (!call) throw new Error(`no client method for ${method.name}`);
      clients.set(method, call);
    }
    return call;
  };
  const check = async (method: DescMethod, request: Message, principal: Principal) => {
    const limits = guard.limits.request(principal.tenantId);
    const bytes = toBinary(method.input, request);
    if (bytes.byteLength > limits.maxBytes) {
      throw new MeshError(
        Code.ResourceExhausted,
        `request is larger than ${limits.maxBytes} bytes, the most this tenant may send`,
      );
    }
    const problem = protoShapeProblem(method.input, bytes, limits);
    if (problem) throw new MeshError(Code.InvalidArgument, problem);
    await authorize(guard, method, request, principal);
  };
  return {
    admit: (headers) => admitCaller(guard, headers),
    requestLimits: (tenantId) => guard.limits.request(tenantId),
    async allows(method, request, principal) {
      const decision = await guard.authorizer({ peer: guard.peer, principal, method, request });
      return decision.allow;
    },
    async unary(upstream, method, request, ctx) {
      await check(method, request, ctx.principal);
      return (await clientFor(upstream, method)(request, {
        principal: ctx.principal,
        timeoutMs: options.defaultTimeoutMs,
        ...(ctx.signal ? { signal: ctx.signal } : {}),
      })) as never;
    },
    async *stream(upstream, method, request, ctx) {
      await check(method, request, ctx.principal);
      const release = await guard.limits.openStream(ctx.principal.tenantId);
      try {
        yield* clientFor(upstream, method)(request, {
          principal: ctx.principal,
          timeoutMs: 0,
          ...(ctx.signal ? { signal: ctx.signal } : {}),
        }) as AsyncIterable<never>;
      } finally {
        release();
      }
    },
  };
}
