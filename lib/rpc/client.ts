/**
 * Typed clients over mutual TLS for any protobuf-es service descriptor.
 *
 * A `MeshChannel` is one connection (pool) to one server address, presenting
 * this process's certificate and accepting the server only if it proves the
 * expected SPIFFE ID. `createClient(Service, channel)` gives typed methods:
 *
 * | method kind | client method |
 * | --- | --- |
 * | unary | `(req, opts?) => Promise<Response>` |
 * | server streaming | `(req, opts?) => AsyncIterable<Response>` |
 * | client streaming | `(reqs: AsyncIterable<Request>, opts?) => Promise<Response>` |
 * | bidi streaming | `(reqs: AsyncIterable<Request>, opts?) => AsyncIterable<Response>` |
 *
 * Inside a server handler, calls inherit the incoming call's deadline,
 * cancellation and trace automatically. Failures reject with `MeshError`.
 *
 * @example
 * const certs = await watchCertificates({ dir: ".agentmesh/certs/executor" });
 * const channel = createChannel({ address: "127.0.0.1:7101", certs, server: spiffeId({ name: "registry" }) });
 * const registry = createClient(RegistryService, channel);
 * const { agents } = await registry.findAgents({ capability: "text.summarize" }, { timeoutMs: 500 });
 * for await (const change of registry.watchAgents({}, { signal })) console.log(change);
 * channel.close();
 */
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  type Message,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import type { GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import {
  type ChannelOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type CallOptions as GrpcCallOptions,
  Client as GrpcClient,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import { useFastUtf8Encoding } from "../proto/fast-utf8.js";
import { type MeshMetrics, meshMetrics } from "../telemetry/metrics.js";
import type { CertWatcher } from "../tls/cert-watcher.js";
import { channelCredentials, type ServerIdentityCheck } from "../tls/credentials.js";
import { currentScope } from "./call-scope.js";
import {
  clientDeadline,
  clientMetrics,
  clientPrincipal,
  clientTracing,
} from "./client-interceptors.js";
import { decode, encode } from "./codec.js";
import { principalKey } from "./context-keys.js";
import { type ContextValues, createContextValues } from "./context-values.js";
import {
  applyInterceptors,
  type Interceptor,
  type MeshCall,
  type MeshResponse,
  type Next,
} from "./interceptor.js";
import { methodPath } from "./server-interceptors.js";
import { fromStatus } from "./status.js";
import { grpcTarget, roundRobinServiceConfig } from "./target.js";

export interface ChannelOptions_ {
  /** `host:port` of the server, or several replicas (see `target.ts`). */
  address: string;
  /** This process's certificate files, watched for rotation. */
  certs: CertWatcher;
  /** The server's expected SPIFFE ID(s) (or a predicate); host names are not checked. */
  server: ServerIdentityCheck;
  /** Largest message sent or accepted; default 4 MiB. */
  maxMessageBytes?: number;
  /** Deadline for unary and client-streaming calls without `timeoutMs`; default 30 s. 0 = none. */
  defaultTimeoutMs?: number;
  /** Yours, applied inside the built-in ones (nearest the wire), first outermost. */
  interceptors?: Interceptor[];
  /** Default a logger named "rpc-client". */
  logger?: Logger;
  /** Default the process metrics. */
  metrics?: MeshMetrics;
  /** Extra grpc-js channel options (tuning only; credentials are always mTLS). */
  grpcOptions?: ChannelOptions;
}
export type { ChannelOptions_ as MeshChannelOptions };

/** One mTLS connection to one server, shared by any number of clients. */
export interface MeshChannel {
  readonly address: string;
  /** @internal Runs one call through the interceptors and onto the wire. */
  readonly run: Next;
  /** @internal */
  readonly defaultTimeoutMs: number;
  /** Resolves once connected (TLS handshake done), rejects after `timeoutMs`. */
  waitForReady(timeoutMs?: number): Promise<void>;
  /** Closes the connection; calls in flight are cancelled. */
  close(): void;
}

/** Per-call options. */
export interface CallOptions {
  /** Cancels the call. */
  signal?: AbortSignal;
  /** Relative deadline; the effective one is the earliest of this and an inherited one. */
  timeoutMs?: number;
  /** Principal to act for (`x-agentmesh-principal-bin`); the server honours it only if the policy lets this process delegate. */
  principal?: Principal;
  /** Extra request metadata. */
  metadata?: Record<string, string | Buffer>;
  /** Typed values for your interceptors. */
  values?: ContextValues;
}

type In<M extends Pick<DescMethod, "input">> = MessageInitShape<M["input"]>;
type Out<M extends Pick<DescMethod, "output">> = MessageShape<M["output"]>;

export type ClientMethod<M extends Pick<DescMethod, "input" | "output" | "methodKind">> =
  M["methodKind"] extends "unary"
    ? (request: In<M>, options?: CallOptions) => Promise<Out<M>>
    : M["methodKind"] extends "server_streaming"
      ? (request: In<M>, options?: CallOptions) => AsyncIterable<Out<M>>
      : M["methodKind"] extends "client_streaming"
        ? (requests: AsyncIterable<In<M>>, options?: CallOptions) => Promise<Out<M>>
        : (requests: AsyncIterable<In<M>>, options?: CallOptions) => AsyncIterable<Out<M>>;

/** A typed client: one method per RPC, by local name (`findAgents`). */
export type Client<S extends DescService> = S extends {
  method: infer Methods extends GenServiceMethods;
}
  ? { [K in keyof Methods]: ClientMethod<Methods[K]> }
  : Record<string, (...args: unknown[]) => unknown>;

const identity = (b: Buffer) => b;

/** Opens a channel; it connects lazily on the first call (or `waitForReady`). */
export function createChannel(options: ChannelOptions_): MeshChannel {
  useFastUtf8Encoding();
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const logger = options.logger ?? createLogger({ name: "rpc-client" });
  const metrics = options.metrics ?? meshMetrics();
  const expected = options.server;
  // SNI must be a host name, not an IP; the identity check ignores it anyway.
  const sni =
    typeof expected === "string" ? (expected.split("/").pop() ?? "agentmesh") : "agentmesh";
  const target = grpcTarget(options.address);
  let grpcClient: GrpcClient;
  try {
    grpcClient = new GrpcClient(target, channelCredentials(options.certs, { expect: expected }), {
      "grpc.enable_channelz": 0, // see createServer
      // Several replicas behind one address (a list or a DNS name): spread and fail over.
      "grpc.service_config": roundRobinServiceConfig,
      // Redial a lost peer at least every 2 s (grpc-js backs off up to 120 s), so a
      // restarted service is reached again within seconds, not minutes.
      "grpc.max_reconnect_backoff_ms": 2_000,
      ...options.grpcOptions,
      "grpc.ssl_target_name_override": sni,
      "grpc.default_authority": sni,
      "grpc.max_receive_message_length": maxMessageBytes,
      "grpc.max_send_message_length": maxMessageBytes,
    });
  } catch (err) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid address ${JSON.stringify(options.address)}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  const transport = createTransport(grpcClient);
  const run = applyInterceptors(transport, [
    clientMetrics(metrics),
    clientTracing(),
    clientDeadline(),
    clientPrincipal(),
    ...(options.interceptors ?? []),
  ]);
  void logger;
  return {
    address: options.address,
    run,
    defaultTimeoutMs: options.defaultTimeoutMs ?? 30_000,
    waitForReady(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        grpcClient.waitForReady(Date.now() + timeoutMs, (err) =>
          err
            ? reject(
                new MeshError(Code.Unavailable, `cannot reach ${options.address}: ${err.message}`, {
                  cause: err,
                }),
              )
            : resolve(),
        );
      });
    },
    close: () => grpcClient.close(),
  };
}

/** A typed client of `service` over `channel`. */
export function createClient<S extends DescService>(service: S, channel: MeshChannel): Client<S> {
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    client[method.localName] = clientMethod(method, channel);
  }
  return client as Client<S>;
}

function clientMethod(method: DescMethod, channel: MeshChannel): unknown {
  const start = (request: MeshCall["request"], options: CallOptions | undefined): MeshCall => {
    const scope = currentScope();
    let signal = options?.signal;
    // Cancellation of the incoming call cancels the calls its handler makes.
    if (scope) signal = signal ? AbortSignal.any([signal, scope.signal]) : scope.signal;
    const metadata = new Metadata();
    if (options?.metadata) {
      for (const [k, v] of Object.entries(options.metadata)) metadata.set(k, v);
    }
    const values = options?.values ?? createContextValues();
    if (options?.principal) values.set(principalKey, options.principal);
    const timeoutMs =
      options?.timeoutMs ??
      (method.methodKind === "unary" || method.methodKind === "client_streaming"
        ? channel.defaultTimeoutMs
        : 0);
    return {
      side: "client",
      method,
      request,
      metadata,
      signal: signal ?? neverAborted,
      deadline: timeoutMs > 0 ? Date.now() + timeoutMs : undefined,
      values,
    };
  };
  const input = method.input;
  const toRequests = async function* (requests: AsyncIterable<unknown>): AsyncIterable<Message> {
    for await (const r of requests) yield create(input, r as never);
  };
  switch (method.methodKind) {
    case "unary":
    case "client_streaming": {
      const streaming = method.methodKind === "client_streaming";
      return (request: unknown, options?: CallOptions) =>
        channel.run(
          start(
            streaming
              ? toRequests(request as AsyncIterable<unknown>)
              : create(input, request as never),
            options,
          ),
        );
    }
    default: {
      const streaming = method.methodKind === "bidi_streaming";
      return (request: unknown, options?: CallOptions): AsyncIterable<Message> => ({
        async *[Symbol.asyncIterator]() {
          const call = start(
            streaming
              ? toRequests(request as AsyncIterable<unknown>)
              : create(input, request as never),
            options,
          );
          yield* (await channel.run(call)) as AsyncIterable<Message>;
        },
      });
    }
  }
}

const neverAborted = new AbortController().signal;

/** The innermost client step: grpc-js. */
function createTransport(grpc: GrpcClient): Next {
  const send = sendOn(grpc);
  return (call) => {
    try {
      return send(call);
    } catch (err) {
      return Promise.reject(notStarted(err));
    }
  };
}

/** grpc-js throws synchronously when the channel is closed. */
function notStarted(err: unknown): MeshError {
  const message = err instanceof Error ? err.message : String(err);
  return new MeshError(Code.Unavailable, `call not started: ${message}`, { cause: err });
}

/** A promise whose executor may throw synchronously (grpc-js on a closed channel): UNAVAILABLE. */
function guarded<T>(
  executor: (resolve: (value: T) => void, reject: (reason: unknown) => void) => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      executor(resolve, reject);
    } catch (err) {
      reject(notStarted(err));
    }
  });
}

function sendOn(grpc: GrpcClient): Next {
  return (call) => {
    const { method } = call;
    const path = methodPath(call);
    if (call.signal.aborted) return Promise.reject(cancelled(call.signal));
    const grpcOptions: GrpcCallOptions =
      call.deadline === undefined ? {} : { deadline: call.deadline };
    switch (method.methodKind) {
      case "unary":
        return guarded<MeshResponse>((resolve, reject) => {
          const req = encode(method.input, call.request as Message);
          const onAbort = () => c.cancel();
          const c = grpc.makeUnaryRequest(
            path,
            identity,
            identity,
            req,
            call.metadata,
            grpcOptions,
            (err, res) => {
              call.signal.removeEventListener("abort", onAbort);
              if (err) reject(toMeshError(err, call.signal));
              else settleResponse(method.output, res as Buffer, resolve, reject);
            },
          );
          if (call.signal !== neverAborted)
            call.signal.addEventListener("abort", onAbort, { once: true });
        });
      case "client_streaming":
        return guarded<MeshResponse>((resolve, reject) => {
          const onAbort = () => c.cancel();
          const c = grpc.makeClientStreamRequest(
            path,
            identity,
            identity,
            call.metadata,
            grpcOptions,
            (err, res) => {
              call.signal.removeEventListener("abort", onAbort);
              if (err) reject(requestFailure.error ?? toMeshError(err, call.signal));
              else settleResponse(method.output, res as Buffer, resolve, reject);
            },
          );
          if (call.signal !== neverAborted)
            call.signal.addEventListener("abort", onAbort, { once: true });
          const requestFailure = pump(
            c,
            method.input,
            call.request as AsyncIterable<Message>,
            call.signal,
          );
        });
      case "server_streaming": {
        const c = grpc.makeServerStreamRequest(
          path,
          identity,
          identity,
          encode(method.input, call.request as Message),
          call.metadata,
          grpcOptions,
        );
        return Promise.resolve(readResponses(c, method.output, call.signal));
      }
      case "bidi_streaming": {
        const c = grpc.makeBidiStreamRequest(path, identity, identity, call.metadata, grpcOptions);
        const requestFailure = pump(
          c,
          method.input,
          call.request as AsyncIterable<Message>,
          call.signal,
        );
        return Promise.resolve(readResponses(c, method.output, call.signal, requestFailure));
      }
    }
  };
}

/** Decodes a response straight into the call's promise (no extra promise step). */
function settleResponse(
  schema: DescMessage,
  bytes: Buffer,
  resolve: (message: Message) => void,
  reject: (err: unknown) => void,
): void {
  let message: Message;
  try {
    message = decode(schema, bytes);
  } catch (err) {
    reject(new MeshError(Code.Internal, `malformed response ${schema.typeName}`, { cause: err }));
    return;
  }
  resolve(message);
}

/** Set when the caller's request stream throws: the call is cancelled and fails with this error. */
interface RequestFailure {
  error: MeshError | undefined;
}

/** Writes the request stream with backpressure, then half-closes; stops on cancellation. */
function pump(
  c: ClientWritableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>,
  schema: DescMessage,
  requests: AsyncIterable<Message>,
  signal: AbortSignal,
): RequestFailure {
  const failure: RequestFailure = { error: undefined };
  void (async () => {
    try {
      for await (const m of requests) {
        if (signal.aborted) return;
        if (!c.write(encode(schema, m))) {
          await new Promise<void>((resolve) => {
            const done = () => {
              c.removeListener("drain", done);
              c.removeListener("close", done);
              resolve();
            };
            c.once("drain", done);
            c.once("close", done);
          });
        }
      }
      c.end();
    } catch (err) {
      // The caller's own request stream failed: cancel the call and report that error.
      failure.error =
        err instanceof MeshError
          ? err
          : new MeshError(
              Code.Canceled,
              `request stream failed: ${err instanceof Error ? err.message : String(err)}`,
              {
                cause: err,
              },
            );
      c.cancel();
    }
  })();
  return failure;
}

/** Reads a response stream; stopping early cancels the call, as does the signal. */
async function* readResponses(
  c: ClientReadableStream<Buffer> | ClientDuplexStream<Buffer, Buffer>,
  schema: DescMessage,
  signal: AbortSignal,
  requestFailure?: RequestFailure,
): AsyncIterable<Message> {
  const onAbort = () => c.cancel();
  if (signal !== neverAborted) signal.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    for await (const chunk of c as AsyncIterable<Buffer>) {
      let message: Message;
      try {
        message = decode(schema, chunk);
      } catch (err) {
        throw new MeshError(Code.Internal, `malformed response ${schema.typeName}`, { cause: err });
      }
      yield message;
    }
    finished = true;
  } catch (err) {
    finished = true;
    throw requestFailure?.error ?? toMeshError(err, signal);
  } finally {
    signal.removeEventListener("abort", onAbort);
    if (!finished) c.cancel();
  }
}

function cancelled(signal: AbortSignal): MeshError {
  const reason: unknown = signal.reason;
  if (reason instanceof MeshError) return reason;
  return new MeshError(Code.Canceled, "call cancelled", { cause: reason });
}

function toMeshError(err: unknown, signal: AbortSignal): MeshError {
  if (err instanceof MeshError) return err;
  const e = err as Partial<ServiceError>;
  if (typeof e.code === "number") {
    if ((e.code as number) === Code.Canceled && signal.aborted) return cancelled(signal);
    return fromStatus({
      code: e.code,
      details: e.details ?? "",
      ...(e.metadata ? { metadata: e.metadata } : {}),
    });
  }
  return MeshError.from(err, Code.Unknown);
}
