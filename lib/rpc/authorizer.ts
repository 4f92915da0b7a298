/**
 * The contract between the RPC spine and the policy: the server calls an
 * `Authorizer` once per call, after it has read the caller's identity from the
 * verified peer certificate and before the handler runs. `lib/policy` provides
 * the implementation backed by the compiled OPA policy.
 */
import type { DescMethod, Message } from "@bufbuild/protobuf";
import type { Principal } from "../../gen/agentmesh/v1/common_pb.js";

/** The caller as proven by its client certificate (URI SAN). */
export interface PeerIdentity {
  /** Full SPIFFE ID, e.g. `spiffe://agentmesh.local/ns/agentmesh/sa/executor`. */
  spiffeId: string;
  trustDomain: string;
  namespace: string;
  /** Service account name, e.g. `executor`, `gateway`, `agent-text`. */
  name: string;
}

/** What the authorizer sees of one call. */
export interface AuthorizationRequest {
  /** Verified peer; undefined only if the transport could not prove one (always denied). */
  peer: PeerIdentity | undefined;
  /**
   * Principal the caller claims to act for (set by the gateway in the
   * `x-agentmesh-principal-bin` metadata). Honoured only if the decision says so.
   */
  principal: Principal | undefined;
  /** The method called. */
  method: DescMethod;
  /**
   * The request message for unary and server-streaming calls (resource fields
   * such as `tenant_id`, `goal_id`, `capability` are read from it by name);
   * undefined for client-streaming and bidi calls.
   */
  request: Message | undefined;
}

/** The policy's answer. */
export interface Decision {
  allow: boolean;
  /** Why; sent to the caller with PERMISSION_DENIED and written to the decision log. */
  reason: string;
  /** Whether `principal` may be trusted for this call (the peer may delegate). */
  principalTrusted: boolean;
}

/**
 * Decides one call. Must be fast (microseconds): it runs on every RPC.
 * Throwing is treated as a denial (fail closed).
 */
export type Authorizer = (request: AuthorizationRequest) => Decision | Promise<Decision>;

/** Metadata key carrying the delegated principal (protobuf binary `agentmesh.v1.Principal`). */
export const principalMetadataKey = "x-agentmesh-principal-bin";
