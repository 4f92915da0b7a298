/**
 * The mesh's gRPC server: protobuf-es service descriptors and handler objects
 * in, a grpc-js server speaking mutual TLS out. Nothing here is per-service:
 * adding an RPC to a `.proto` makes it servable.
 *
 * Every call, of every kind, runs through the built-in interceptors (metrics,
 * tracing and logging, deadline, identity, the contract's validation rules,
 * authorization — see
 * `server-interceptors.ts`) and then yours. Every server also serves
 * `grpc.health.v1.Health` and server reflection (v1 and v1alpha), and those
 * calls pass the same authorization.
 *
 * @example
 * const certs = await watchCertificates({ dir: ".agentmesh/certs/registry" });
 * const server = createServer({ certs, authorizer: policy.authorize, port: 7101 });
 * server.add(RegistryService, registryHandlers);
 * const port = await server.listen();
 * server.health.set("", "SERVING");
 * // ...
 * await server.shutdown();
 */

import { addAbortSignal } from "node:stream";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
} from "@bufbuild/protobuf";
import {
  type ChannelOptions,
  type Metadata,
  Server,
  type ServerDuplexStream,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type StatusObject,
  type sendUnaryData,
} from "@grpc/grpc-js";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import { useFastUtf8Encoding } from "../proto/fast-utf8.js";
import { warmValidation } from "../proto/validate-message.js";
import { type MeshMetrics, meshMetrics } from "../telemetry/metrics.js";
import type { CertWatcher } from "../tls/cert-watcher.js";
import { serverCredentials } from "../tls/credentials.js";
import type { Authorizer, PeerIdentity } from "./authorizer.js";
import { type CallScope, runInScope } from "./call-scope.js";
import { decode, encode } from "./codec.js";
import {
  loggerKey,
  peerKey,
  principalKey,
  scopeKey,
  spanKey,
  type TransportCall,
  transportKey,
} from "./context-keys.js";
import { type ContextValues, createContextValues } from "./context-values.js";
import type { AnyHandler, HandlerContext, ServiceImpl } from "./handler.js";
import { createHealth, type HealthStatus } from "./health.js";
import {
  applyInterceptors,
  type Interceptor,
  type MeshCall,
  type MeshResponse,
  type Next,
} from "./interceptor.js";
import { createReflection } from "./reflection.js";
import {
  serverAuthorize,
  serverDeadline,
  serverIdentity,
  serverMetrics,
  serverTracing,
  serverValidate,
} from "./server-interceptors.js";
import { toStatus } from "./status.js";
import { abortPromise } from "./stream-util.js";

export interface ServerOptions {
  /** This process's certificate files, watched for rotation (`watchCertificates`). */
  certs: CertWatcher;
  /** Decides every call; required, fails closed. `lib/policy` provides the OPA-backed one. */
  authorizer: Authorizer;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (a free port, see `listen()`'s result). */
  port?: number;
  /** Largest message accepted or sent, in bytes; larger is RESOURCE_EXHAUSTED. Default 4 MiB. */
  maxMessageBytes?: number;
  /** Yours, applied inside the built-in ones (nearest the handler), first outermost. */
  interceptors?: Interceptor[];
  /** Default a logger named "rpc". */
  logger?: Logger;
  /** Default the process metrics (`meshMetrics()`). */
  metrics?: MeshMetrics;
  /**
   * Connections older than this are closed gracefully (GOAWAY, in-flight calls
   * finish), so clients re-handshake and rotated or revoked certificates take
   * effect. Default 30 minutes.
   */
  maxConnectionAgeMs?: number;
  /** Serve gRPC reflection; default true. */
  reflection?: boolean;
  /** Extra grpc-js server options (tuning only; credentials are always mTLS). */
  grpcOptions?: ChannelOptions;
}

/** A server under construction (`add`) and then running (`listen`). */
export interface MeshServer {
  /** Serves `service` with `impl`; call before `listen()`. Methods without a handler are UNIMPLEMENTED. */
  add<S extends DescService>(service: S, impl: ServiceImpl<S>): this;
  /** Binds and starts; resolves to the bound port. Certificates are loaded before the first connection. */
  listen(): Promise<number>;
  /** The bound port (after `listen()`). */
  readonly port: number;
  /** `host:port` to dial (after `listen()`). */
  readonly address: string;
  /** Health status per service (`""` is the whole server). */
  readonly health: HealthStatus;
  /** Stops accepting calls, waits up to `graceMs` (default 5 s) for running ones, then cancels them. */
  shutdown(graceMs?: number): Promise<void>;
}

const defaultMaxMessageBytes = 4 * 1024 * 1024;

export function createServer(options: ServerOptions): MeshServer {
  useFastUtf8Encoding();
  if (typeof options.authorizer !== "function") {
    throw new MeshError(
      Code.InvalidArgument,
      "createServer: an authorizer is required (fail closed)",
    );
  }
  const logger = options.logger ?? createLogger({ name: "rpc" });
  const metrics = options.metrics ?? meshMetrics();
  const maxMessageBytes = options.maxMessageBytes ?? defaultMaxMessageBytes;
  const grpcServer = new Server({
    // grpc-js's per-call channelz bookkeeping is debug introspection nobody reads here (we
    // serve no channelz service); on the gateway's hop it was a third of the call's cost.
    "grpc.enable_channelz": 0,
    ...options.grpcOptions,
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc.max_connection_age_ms": options.maxConnectionAgeMs ?? 30 * 60_000,
    "grpc.max_connection_age_grace_ms": 60_000,
  });
  const interceptors: Interceptor[] = [
    serverMetrics(metrics),
    serverTracing({ logger }),
    serverDeadline(),
    serverIdentity({ logger }),
    serverValidate(),
    serverAuthorize({ authorizer: options.authorizer, logger, metrics }),
    ...(options.interceptors ?? []),
  ];
  const services: DescService[] = [];
  const health = createHealth();
  let port = 0;
  let host = options.host ?? "127.0.0.1";
  let listening = false;

  const server: MeshServer = {
    add(service, impl) {
      if (listening) throw new MeshError(Code.FailedPrecondition, "add services before listen()");
      if (services.some((s) => s.typeName === service.typeName)) {
        throw new MeshError(Code.AlreadyExists, `service ${service.typeName} is already served`);
      }
      services.push(service);
      for (const method of service.methods) {
        const handler = (impl as Record<string, AnyHandler | undefined>)[method.localName];
        registerMethod(
          grpcServer,
          method,
          applyInterceptors(terminal(handler), interceptors),
          logger,
          metrics,
        );
      }
      health.set(service.typeName, "SERVING");
      return this;
    },
    async listen() {
      if (listening) throw new MeshError(Code.FailedPrecondition, "listen() called twice");
      server.add(health.service, health.impl);
      if (options.reflection ?? true) {
        const reflection = createReflection(() => services);
        server.add(reflection.v1, reflection.v1Impl);
        server.add(reflection.v1alpha, reflection.v1alphaImpl);
      }
      listening = true;
      const target = `${host.includes(":") ? `[${host}]` : host}:${options.port ?? 0}`;
      port = await new Promise<number>((resolve, reject) => {
        grpcServer.bindAsync(target, serverCredentials(options.certs), (err, bound) =>
          err
            ? reject(
                new MeshError(Code.Unavailable, `cannot bind ${target}: ${err.message}`, {
                  cause: err,
                }),
              )
            : resolve(bound),
        );
      });
      if (host === "0.0.0.0" || host === "::") host = "127.0.0.1";
      logger.info(
        { event: "server_listening", port, services: services.map((s) => s.typeName) },
        "gRPC server listening (mTLS)",
      );
      // Compile the request rules now rather than on each type's first call (see validate-message.ts).
      warmValidation(services.flatMap((s) => s.methods.map((m) => m.input)));
      return port;
    },
    get port() {
      return port;
    },
    get address() {
      return `${host.includes(":") ? `[${host}]` : host}:${port}`;
    },
    health,
    async shutdown(graceMs = 5000) {
      health.shutdown();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          grpcServer.forceShutdown();
          resolve();
        }, graceMs);
        grpcServer.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
  return server;
}

/** The innermost step: the handler itself, given its context. */
function terminal(handler: AnyHandler | undefined): Next {
  return (call) => {
    try {
      if (!handler) {
        throw new MeshError(
          Code.Unimplemented,
          `${call.method.parent.typeName}.${call.method.name} is not implemented`,
        );
      }
      const ctx = handlerContext(call);
      const out = handler(call.request, ctx);
      const output = call.method.output;
      switch (call.method.methodKind) {
        case "unary":
        case "client_streaming":
          // One promise step after an async handler and none after a synchronous one (an
          // async function here made two: its own and the await's).
          return isThenable(out)
            ? Promise.resolve(out).then((res) => create(output, res as never))
            : Promise.resolve(create(output, out as never));
        default:
          return Promise.resolve(toMessages(output, out as AsyncIterable<unknown>));
      }
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

async function* toMessages(
  schema: DescMessage,
  stream: AsyncIterable<unknown>,
): AsyncIterable<Message> {
  for await (const m of stream) yield create(schema, m as never);
}

function handlerContext(call: MeshCall): HandlerContext {
  const peer = call.values.get(peerKey);
  if (!peer) throw new MeshError(Code.Unauthenticated, "no verified peer");
  return new CallHandlerContext(call, peer);
}

/**
 * What a handler is given. A class, so the lazy `signal` and `log` are getters
 * on its prototype: an object literal with getters builds both accessors anew
 * on every call.
 */
class CallHandlerContext implements HandlerContext {
  readonly method: DescMethod;
  readonly principal: Principal | undefined;
  readonly deadline: number | undefined;
  readonly traceId: string;
  readonly metadata: Metadata;
  readonly values: ContextValues;
  readonly #call: MeshCall;
  #log: Logger | undefined;

  constructor(
    call: MeshCall,
    readonly peer: PeerIdentity,
  ) {
    this.#call = call;
    this.method = call.method;
    this.values = call.values;
    this.principal = call.values.get(principalKey);
    this.deadline = call.deadline;
    this.traceId = call.values.get(spanKey)?.traceId ?? "";
    this.metadata = call.metadata;
  }

  get signal(): AbortSignal {
    return this.#call.signal;
  }

  get log(): Logger {
    this.#log ??= (this.values.get(loggerKey) as () => Logger)();
    return this.#log;
  }
}

/** grpc-js hands us raw bytes; we decode so malformed input is INVALID_ARGUMENT, not INTERNAL. */
const passThrough = (b: Buffer) => b;

type AnyServerCall =
  | ServerUnaryCall<Buffer, Buffer>
  | ServerReadableStream<Buffer, Buffer>
  | ServerWritableStream<Buffer, Buffer>
  | ServerDuplexStream<Buffer, Buffer>;

/**
 * A server call's cancellation. The AbortController (an EventTarget, one of the
 * costliest objects a call would make) is created on first use of `signal`:
 * most unary handlers never look at it. A cancellation that comes first is
 * kept and applied then, so the signal reads the same either way.
 *
 * A class rather than closures: per-call closures bound to names are
 * re-`defineProperty`d on every call when the sources run through tsx.
 */
class CallCancellation {
  #controller: AbortController | undefined;
  #reason: MeshError | undefined;
  readonly #deadline: number | undefined;
  readonly #events: NodeJS.EventEmitter;
  readonly #listener: () => void;

  constructor(call: AnyServerCall, deadline: number | undefined) {
    this.#deadline = deadline;
    this.#events = call as unknown as NodeJS.EventEmitter;
    this.#listener = () => this.cancel();
    // The client may have gone already; grpc-js then emits no further event.
    if (call.cancelled) this.cancel();
    else this.#events.on("cancelled", this.#listener);
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#reason) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  cancel(): void {
    if (this.#reason) return;
    const expired = this.#deadline !== undefined && Date.now() >= this.#deadline;
    this.#reason = expired
      ? new MeshError(Code.DeadlineExceeded, "deadline exceeded")
      : new MeshError(Code.Canceled, "call cancelled by the client");
    this.#controller?.abort(this.#reason);
  }

  /** The call is finished: stop listening. */
  dispose(): void {
    this.#events.removeListener("cancelled", this.#listener);
  }
}

/** Starts one call: signal, deadline, scope, values. The request is filled in by the caller. */
function startCall(
  method: DescMethod,
  call: AnyServerCall,
  request: MeshCall["request"],
): { mesh: MeshCall; scope: CallScope; cancellation: CallCancellation } {
  const rawDeadline = call.getDeadline();
  const deadlineMs = rawDeadline instanceof Date ? rawDeadline.getTime() : rawDeadline;
  const deadline = Number.isFinite(deadlineMs) ? deadlineMs : undefined;
  const cancellation = new CallCancellation(call, deadline);
  const values = createContextValues();
  const scope = new ServerCallScope(cancellation, deadline);
  values.set(transportKey, call as unknown as TransportCall);
  values.set(scopeKey, scope);
  const mesh = new ServerMeshCall(method, request, call.metadata, cancellation, deadline, values);
  return { mesh, scope, cancellation };
}

/** The scope handed to calls a handler makes (a class: its `signal` getter is not rebuilt per call). */
class ServerCallScope implements CallScope {
  spanContext: CallScope["spanContext"] = undefined;
  constructor(
    readonly cancellation: CallCancellation,
    public deadline: number | undefined,
  ) {}
  get signal(): AbortSignal {
    return this.cancellation.signal;
  }
}

/** One incoming call as the interceptors see it. */
class ServerMeshCall implements MeshCall {
  readonly side = "server";
  constructor(
    readonly method: DescMethod,
    public request: MeshCall["request"],
    readonly metadata: Metadata,
    readonly cancellation: CallCancellation,
    public deadline: number | undefined,
    readonly values: ContextValues,
  ) {}
  get signal(): AbortSignal {
    return this.cancellation.signal;
  }
}

function statusOf(err: unknown): Partial<StatusObject> {
  // Interceptors normalise; this guards against anything that slipped through.
  return toStatus(err instanceof MeshError ? err : new MeshError(Code.Internal, "internal error"));
}

function registerMethod(
  grpcServer: Server,
  method: DescMethod,
  run: Next,
  logger: Logger,
  metrics: MeshMetrics,
): void {
  const path = `/${method.parent.typeName}/${method.name}`;
  const { input, output } = method;
  const execute = (mesh: MeshCall, scope: CallScope): Promise<MeshResponse> =>
    runInScope(scope, () => run(mesh));
  // A request that does not decode never reaches the interceptors: count and log it here.
  const rejectMalformed = (call: { getPeer(): string }, err: unknown): Partial<StatusObject> => {
    const labels = {
      side: "server",
      service: method.parent.typeName,
      method: method.name,
      code: "INVALID_ARGUMENT",
    };
    metrics.rpcRequests.inc(labels);
    metrics.rpcErrors.inc(labels);
    logger.debug(
      { method: path, remote: call.getPeer(), err: (err as Error).message },
      "malformed request",
    );
    return statusOf(err);
  };
  const kind = method.methodKind;
  const streamingRequest = kind === "client_streaming" || kind === "bidi_streaming";
  /**
   * Starts the call, or answers `fail` and returns undefined when its single
   * request does not decode. A request stream is decoded as the handler reads it.
   */
  const begin = (call: AnyServerCall, fail: (status: Partial<StatusObject>) => void) => {
    if (streamingRequest) {
      const started = startCall(method, call, undefined as never);
      started.mesh.request = readStream(
        call as ServerReadableStream<Buffer, Buffer>,
        input,
        started.mesh.signal,
      );
      return started;
    }
    try {
      return startCall(
        method,
        call,
        decode(input, (call as ServerUnaryCall<Buffer, Buffer>).request),
      );
    } catch (err) {
      fail(rejectMalformed(call, err));
      return undefined;
    }
  };
  // One response: the callback answers it.
  const respondOnce = (
    call: ServerUnaryCall<Buffer, Buffer> | ServerReadableStream<Buffer, Buffer>,
    callback: sendUnaryData<Buffer>,
  ) => {
    const started = begin(call, (status) => callback(status as never));
    if (!started) return;
    execute(started.mesh, started.scope).then(
      (res) => {
        started.cancellation.dispose();
        callback(null, encode(output, res as Message));
      },
      (err: unknown) => {
        started.cancellation.dispose();
        callback(statusOf(err) as never);
      },
    );
  };
  // A response stream: written with backpressure, then ended or failed with a status.
  const respondStream = (
    call: ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
  ) => {
    const started = begin(call, (status) => call.emit("error", status));
    if (!started) return;
    const { mesh, scope, cancellation } = started;
    execute(mesh, scope)
      .then((res) => writeStream(call, output, res as AsyncIterable<Message>, mesh.signal))
      .then(
        () => {
          cancellation.dispose();
          if (!call.cancelled) call.end();
        },
        (err: unknown) => {
          cancellation.dispose();
          if (!call.cancelled) call.emit("error", statusOf(err));
        },
      );
  };
  switch (kind) {
    case "unary":
      grpcServer.register(path, respondOnce, passThrough, passThrough, "unary");
      return;
    case "client_streaming":
      grpcServer.register(path, respondOnce, passThrough, passThrough, "clientStream");
      return;
    case "server_streaming":
      grpcServer.register(path, respondStream, passThrough, passThrough, "serverStream");
      return;
    case "bidi_streaming":
      grpcServer.register(path, respondStream, passThrough, passThrough, "bidi");
      return;
  }
  logger.warn({ path }, "unknown method kind");
}

/** Decodes an incoming message stream; ends with CANCELLED when the call is cancelled. */
async function* readStream(
  call: ServerReadableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
  schema: DescMessage,
  signal: AbortSignal,
): AsyncIterable<Message> {
  addAbortSignal(signal, call);
  try {
    // Not `for await (… of call)`: that destroys the stream when the client
    // half-closes, killing the bidi response side before its status is sent.
    for await (const chunk of call.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      yield decode(schema, chunk);
    }
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw err;
  }
}

/**
 * Writes a response stream honouring backpressure: when grpc-js's buffer is
 * full (`write()` returns false) it waits for `drain`, and it stops as soon as
 * the call is cancelled, telling the handler's generator to finish.
 */
async function writeStream(
  call: ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
  schema: DescMessage,
  stream: AsyncIterable<Message>,
  signal: AbortSignal,
): Promise<void> {
  const iterator = stream[Symbol.asyncIterator]();
  const aborted = abortPromise(signal);
  try {
    while (!signal.aborted) {
      const next = await Promise.race([iterator.next(), aborted.promise]);
      if (next === undefined || signal.aborted) break;
      if (next.done) return;
      if (!call.write(encode(schema, next.value))) {
        await Promise.race([
          new Promise((resolve) => call.once("drain", resolve)),
          aborted.promise,
        ]);
      }
    }
    // Cancelled: let the generator run its finally blocks; nobody is listening any more.
    iterator.return?.().catch(() => {});
  } finally {
    aborted.dispose();
  }
}
