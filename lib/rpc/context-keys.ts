/**
 * The context keys the spine itself fills. Handlers read them through
 * `HandlerContext`; interceptors may read them from `call.values`.
 */
import type { SpanContext } from "@opentelemetry/api";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";
import type { Logger } from "../log/logger.js";
import type { PeerIdentity } from "./authorizer.js";
import type { CallScope } from "./call-scope.js";
import { createContextKey } from "./context-values.js";

/** Server: the caller proven by its certificate. Client: the server's identity is checked in TLS instead. */
export const peerKey = createContextKey<PeerIdentity | undefined>(undefined, {
  description: "peer",
});

/**
 * Server: the delegated principal, set only when the authorizer trusted it.
 * Client: the principal to send in `x-agentmesh-principal-bin`.
 */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "principal",
});

/** This call's span (server span or client span). */
export const spanKey = createContextKey<SpanContext | undefined>(undefined, {
  description: "span",
});

/** The call's logger (created on first use), carrying trace id and method. */
export const loggerKey = createContextKey<(() => Logger) | undefined>(undefined, {
  description: "logger",
});

/** @internal Server: the grpc-js call (the identity interceptor reads the TLS peer from it). */
export const transportKey = createContextKey<TransportCall | undefined>(undefined, {
  description: "transport",
});

/** @internal The scope the server runs the handler in (deadline, signal, trace for outgoing calls). */
export const scopeKey = createContextKey<CallScope | undefined>(undefined, {
  description: "scope",
});

/** What the identity interceptor needs of a grpc-js server call. */
export interface TransportCall {
  getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string } | undefined };
  getPeer(): string;
}
