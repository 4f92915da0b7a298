/**
 * `startGateway`: the only door from outside. A connect-node server for
 * Connect, gRPC and gRPC-Web over HTTP/1.1 and HTTP/2 that authenticates the
 * caller (API key or JWT), admits it against its tenant's limits, checks the
 * policy, and forwards each public call over mTLS to the internal service as
 * the `gateway` identity carrying the caller's principal. It also serves
 * AdminService, gRPC reflection, `/healthz`, `/readyz` and the dashboard.
 *
 * @example
 * const gateway = await startGateway({
 *   store,
 *   authorizer: createPolicyAuthorizer(engine),
 *   policyReady: () => engine.ready,
 *   certs: await watchCertificates({ dir: `${config.certDir}/gateway` }),
 *   upstreams: { executor: "127.0.0.1:7103", registry: "127.0.0.1:7101", planner: "127.0.0.1:7102", learning: "127.0.0.1:7104" },
 *   port: config.ports.gateway,
 * });
 * console.log(`dashboard at ${gateway.url}`);
 * await gateway.close();
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { QueueStats } from "../lib/bus/job-bus.js";
import { spiffeId } from "../lib/identity/spiffe.js";
import { createLogger, type Logger } from "../lib/log/logger.js";
import { componentNames, type MeshRuntime } from "../lib/mesh/mesh-runtime.js";
import { observeDecisions } from "../lib/policy/authorizer.js";
import { useFastUtf8Encoding } from "../lib/proto/fast-utf8.js";
import { warmValidation } from "../lib/proto/validate-message.js";
import type { Authorizer, PeerIdentity } from "../lib/rpc/authorizer.js";
import { createChannel, type MeshChannel } from "../lib/rpc/client.js";
import { createReflection } from "../lib/rpc/reflection.js";
import type { SecretStore } from "../lib/secrets/secret-store.js";
import { policyDenialEvent } from "../lib/store/audit-log.js";
import type { Store } from "../lib/store/store.js";
import type { CertWatcher } from "../lib/tls/cert-watcher.js";
import { a2aHandler } from "./a2a/a2a-handler.js";
import { adminHandlers } from "./admin-service.js";
import { apiKeyAuthenticator } from "./api-key-auth.js";
import { createAuthenticator } from "./authenticate.js";
import { catalogHandler } from "./catalog-route.js";
import { dashboardHandler } from "./dashboard.js";
import { errorInterceptor } from "./errors.js";
import { registerPublicRoutes } from "./forward.js";
import { admitCaller, type GuardOptions, guardInterceptor, principalContextKey } from "./guard.js";
import {
  type ListenerTls,
  listen,
  type NodeRequest,
  type NodeResponse,
  withEdgeHeaders,
} from "./http-edge.js";
import { type JwtOptions, jwtAuthenticator } from "./jwt-auth.js";
import { mcpHandler } from "./mcp/mcp-handler.js";
import { policyDecisionHandlers } from "./policy-decisions.js";
import { createPublicCaller } from "./protocols/public-caller.js";
import { publicMethods, publicServices, type Upstream } from "./public-api.js";
import { startQueueHistory } from "./queue-history.js";
import { createRecentDecisions } from "./recent-decisions.js";
import { validateRequests } from "./request-validation.js";
import { createTenantLimits, type TenantLimitsOptions } from "./tenant-limits.js";
import { unknownRoute } from "./unknown-route.js";

export interface GatewayOptions {
  /** Authentication data (API keys), tenants' limits and the audit log. */
  store: Store;
  /** The policy, as the services use it: `createPolicyAuthorizer(engine)`. */
  authorizer: Authorizer;
  /** Whether the policy is loaded (`engine.ready`), for `/readyz`. Default always true. */
  policyReady?: () => boolean;
  /** The gateway identity's certificate files (SPIFFE ID `.../sa/gateway`). */
  certs: CertWatcher;
  /** `host:port` of each internal service. */
  upstreams: Readonly<Record<Upstream, string>>;
  /** SPIFFE trust domain and namespace of the mesh. Default `agentmesh.local`, `agentmesh`. */
  trustDomain?: string;
  namespace?: string;
  /** Address to bind. Default 127.0.0.1 (plain text is refused elsewhere unless `allowInsecure`). */
  host?: string;
  /** Port. Default 8080; 0 picks a free one (see `Gateway.port`). */
  port?: number;
  /**
   * Certificate and key of the public listener, as PEM or as files that are
   * re-read when they change; without them plain HTTP on loopback.
   */
  tls?: ListenerTls;
  /** Plain text on a non-loopback address (behind a TLS-terminating proxy). Default false. */
  allowInsecure?: boolean;
  /**
   * Accept JWTs (an issuer and an audience are required); default API keys
   * only. Without `jwksUrl` or `jwks` the JWKS is the `jwt-jwks` secret of `secrets`.
   */
  jwt?: JwtOptions;
  /** The process's secrets (`runtime.secrets`): where the JWT JWKS is read and followed. */
  secrets?: SecretStore;
  /** How long a verified API key is trusted without a store lookup. Default 5000 ms. */
  apiKeyCacheTtlMs?: number;
  /**
   * Default per-tenant limits (a tenant's own record overrides them): rate,
   * streams, and what one request may cost (`defaultRequest`: nesting, list
   * length, values; see `defaultRequestLimits`).
   */
  limits?: Omit<TenantLimitsOptions, "lookup">;
  /**
   * Largest request message in bytes; larger is RESOURCE_EXHAUSTED (not
   * retryable). The most any tenant may send, and the default. Default 1 MiB.
   */
  maxRequestBytes?: number;
  /**
   * Smallest response compressed for clients that accept gzip or brotli.
   * Default 8 KiB (`defaultCompressMinBytes`): compressing a few KB costs more
   * CPU than the bytes it saves are worth on most links.
   */
  compressMinBytes?: number;
  /** Largest deadline a client may ask for; larger is INVALID_ARGUMENT. Default 10 minutes. */
  maxTimeoutMs?: number;
  /** Deadline of a forwarded unary call without one. Default 30 s. */
  defaultTimeoutMs?: number;
  /** Origins allowed to call from browsers (the dashboard itself is same-origin). Default none. */
  corsOrigins?: readonly string[];
  /** Serve the dashboard at `/`. Default true. */
  dashboard?: boolean;
  /** Queue figures for the dashboard (the job bus's `stats`). */
  queueStats?: () => Promise<QueueStats[]>;
  /** Default a logger named "gateway". */
  log?: Logger;
}

/** The default `compressMinBytes` (connect-node's own default is 1 KiB). */
export const defaultCompressMinBytes = 8 * 1024;

export interface Gateway {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, ends streams, closes the internal channels. */
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  useFastUtf8Encoding();
  const log = options.log ?? createLogger({ name: "gateway" });
  const trustDomain = options.trustDomain ?? "agentmesh.local";
  const namespace = options.namespace ?? "agentmesh";
  const peer: PeerIdentity = {
    spiffeId: spiffeId({ trustDomain, namespace, name: "gateway" }),
    trustDomain,
    namespace,
    name: "gateway",
  };
  const { store } = options;
  const apiKeys = apiKeyAuthenticator({
    keys: store.tenants,
    ...(options.apiKeyCacheTtlMs === undefined ? {} : { cacheTtlMs: options.apiKeyCacheTtlMs }),
  });
  const jwt = options.jwt
    ? await jwtAuthenticator({
        ...(options.secrets && !options.jwt.jwksUrl && !options.jwt.jwks
          ? { jwksSecret: options.secrets }
          : {}),
        ...options.jwt,
      })
    : undefined;
  const authenticate = createAuthenticator({ apiKeys, ...(jwt ? { jwt } : {}) });
  const maxRequestBytes = options.maxRequestBytes ?? 1024 * 1024;
  let fallbackLoggedAt = 0;
  const streamInstance = `gateway-${randomUUID()}`;
  const limits = createTenantLimits({
    ...options.limits,
    defaultRequest: { maxBytes: maxRequestBytes, ...options.limits?.defaultRequest },
    lookup: async (tenantId) => store.tenants.find(tenantId),
    // One bucket per tenant for the whole mesh (ADR-013); this replica's own while the store is away.
    shared: {
      take: (key, shape, want) => store.buckets.take(key, shape, want),
      available: () => store.health.status === "serving",
      onFallback: (err) => {
        if (Date.now() - fallbackLoggedAt < 60_000) return;
        fallbackLoggedAt = Date.now();
        log.warn({ err }, "shared rate limit unreachable; this replica limits on its own");
      },
    },
    // A tenant's open streams counted for the whole mesh, leased per replica (ADR-013).
    sharedStreams: {
      instance: streamInstance,
      open: (req) => store.streams.open(req),
      renew: (instance, ttlMs) => store.streams.renew(instance, ttlMs),
      close: (instance, streamId) => store.streams.close(instance, streamId),
      available: () => store.health.status === "serving",
      onFallback: (err) => {
        if (Date.now() - fallbackLoggedAt < 60_000) return;
        fallbackLoggedAt = Date.now();
        log.warn({ err }, "shared stream limit unreachable; this replica counts its own streams");
      },
    },
  });
  const decisions = createRecentDecisions();
  const guard: GuardOptions = {
    authenticate,
    limits,
    // Every decision on a public call is kept for the console (allowed and denied), with
    // what the policy read (bounded; no goal inputs, sensitive or secret fields).
    authorizer: observeDecisions(options.authorizer, decisions.observe),
    peer,
    log,
    onDenied: ({ principal, method, reason }) => {
      store.audit
        .append(
          policyDenialEvent({
            peer: peer.spiffeId,
            method: `/${method.parent.typeName}/${method.name}`,
            reason,
            tenantId: principal.tenantId,
            principal: `${principal.tenantId}/${principal.subject}`,
          }),
        )
        .catch((err: unknown) => log.warn({ err }, "could not audit a policy denial"));
    },
  };

  const channels = {} as Record<Upstream, MeshChannel>;
  for (const name of ["executor", "registry", "planner", "learning"] as const) {
    channels[name] = createChannel({
      address: options.upstreams[name],
      certs: options.certs,
      server: spiffeId({ trustDomain, namespace, name }),
      logger: log,
    });
  }

  const reflection = createReflection(() => publicServices());
  const rpc = connectNodeAdapter({
    readMaxBytes: maxRequestBytes,
    compressMinBytes: options.compressMinBytes ?? defaultCompressMinBytes,
    maxTimeoutMs: options.maxTimeoutMs ?? 10 * 60_000,
    // No connect-node `shutdownSignal`: every call would add and remove a listener on that one
    // signal (an EventTarget scans its listeners on each), a cost that grows with the calls in
    // flight. close() ends calls by closing their connections, which aborts each call's signal.
    // Nothing unknown passes the edge: unknown JSON fields are an error, unknown binary fields are dropped.
    jsonOptions: { ignoreUnknownFields: false },
    binaryOptions: { readUnknownFields: false },
    // Outermost first: every error leaves through one mapping.
    interceptors: [errorInterceptor(), guardInterceptor(guard)],
    // A fresh set per call, so request validation can flag a refused body for the guard.
    contextValues: () => createContextValues(),
    routes(router) {
      registerPublicRoutes(router, {
        methods: publicMethods(),
        guard,
        channels,
        local: {
          ...adminHandlers({
            store,
            onRevoke: (keyId) => apiKeys.forget(keyId),
            onTenantChanged: (tenantId) => limits.forget(tenantId),
          }),
          ...policyDecisionHandlers(decisions),
        },
        defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
      });
      // The schema is public (it is the SDK), so reflection needs no credentials.
      router.service(reflection.v1, reflection.v1Impl as never, { interceptors: [] });
      router.service(reflection.v1alpha, reflection.v1alphaImpl as never, { interceptors: [] });
      validateRequests(router, {
        maxBytes: maxRequestBytes,
        admit: async (header, values) => {
          const principal = await admitCaller(guard, header);
          values.set(principalContextKey, principal);
          return limits.request(principal.tenantId);
        },
      });
    },
    fallback: unknownRoute as never,
  });
  // Sampled from the start, so the console's queue charts open with the last minutes.
  const queueHistory =
    options.dashboard !== false && options.queueStats
      ? startQueueHistory({ stats: options.queueStats })
      : undefined;
  // The tool catalog the dashboard links to.
  const catalog = options.dashboard === false ? undefined : catalogHandler();
  const dashboard =
    options.dashboard === false
      ? undefined
      : dashboardHandler({
          admit: (headers) => admitCaller(guard, headers),
          decisions,
          queueStats: options.queueStats,
          queueHistory,
          authorizer: options.authorizer,
          peer,
        });
  const policyReady = options.policyReady ?? (() => true);
  // The agent protocols call the public API through the same guard as Connect clients.
  const caller = createPublicCaller({
    guard,
    channels,
    defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
  });
  const a2a = a2aHandler({ caller, tls: Boolean(options.tls), log });
  const mcp = mcpHandler({ caller, log });

  const handler = (req: NodeRequest, res: NodeResponse) => {
    const path = req.url ?? "/";
    // RPCs (`/agentmesh.v1.Service/Method`, reflection) go straight to connect-node: no
    // other route starts so, and each would parse the path again.
    if (path.startsWith("/agentmesh.") || path.startsWith("/grpc.")) {
      rpc(req as never, res as never);
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok\n");
      return;
    }
    if (path === "/readyz") {
      const problems: string[] = [];
      if (!policyReady()) problems.push("policy not loaded");
      if (store.health.status !== "serving") problems.push("store not serving");
      res.writeHead(problems.length ? 503 : 200, { "Content-Type": "text/plain" });
      res.end(problems.length ? `${problems.join("; ")}\n` : "ready\n");
      return;
    }
    if (a2a(req, res) || mcp(req, res)) return;
    if (dashboard?.(req, res)) return;
    if (catalog?.(req, res)) return;
    rpc(req as never, res as never);
  };

  const host = options.host ?? "127.0.0.1";
  const listener = await listen(
    withEdgeHeaders(handler, { origins: options.corsOrigins ?? [], tls: Boolean(options.tls) }),
    {
      host,
      port: options.port ?? 8080,
      tls: options.tls,
      log,
      ...(options.allowInsecure === undefined ? {} : { allowInsecure: options.allowInsecure }),
    },
  );
  const urlHost = host.includes(":") ? `[${host}]` : host;
  const url = `${options.tls ? "https" : "http"}://${urlHost}:${listener.port}`;
  log.info({ url, tls: Boolean(options.tls) }, "gateway listening");
  warmValidation(publicMethods().map((m) => m.method.input));
  let closed: Promise<void> | undefined;
  return {
    url,
    port: listener.port,
    close() {
      closed ??= (async () => {
        await listener.close();
        jwt?.close();
        limits.stop();
        queueHistory?.stop();
        // Streams still open here end with the listener; their leases go with them.
        await store.streams.closeAll(streamInstance).catch(() => undefined);
        for (const c of Object.values(channels)) c.close();
      })();
      return closed;
    },
  };
}

/**
 * The options that put a gateway in front of a mesh runtime's components:
 * its store, policy, certificates (as identity "gateway"), the components'
 * addresses and the bus's queue figures. Listener, limits and logging are the
 * caller's.
 */
export async function meshGatewayOptions(runtime: MeshRuntime) {
  return {
    store: runtime.store,
    secrets: runtime.secrets,
    // Decision-log lines name the gateway as the deciding component, even in `agentmesh dev`.
    authorizer: runtime.authorizerFor("gateway", `gateway-${hostname()}-${process.pid}`),
    policyReady: () => runtime.policy.ready,
    certs: await runtime.certs("gateway"),
    upstreams: Object.fromEntries(
      componentNames.map((name) => [name, runtime.endpoint(name).address]),
    ) as Record<Upstream, string>,
    trustDomain: runtime.config.trustDomain,
    namespace: runtime.config.namespace,
    queueStats: () => runtime.bus.stats(),
  } satisfies Partial<GatewayOptions>;
}
