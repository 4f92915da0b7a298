/**
 * SPIFFE identities of the mesh: `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`.
 *
 * Every process has one, carried as the URI SAN of its X.509 certificate; the
 * RPC spine reads it from the verified peer certificate and the policy decides
 * on it. These helpers build, parse and validate IDs as plain strings so they
 * cost nothing on the hot path.
 *
 * @example
 * const id = spiffeId({ trustDomain: "agentmesh.local", namespace: "agentmesh", name: "executor" });
 * // "spiffe://agentmesh.local/ns/agentmesh/sa/executor"
 * parseSpiffeId(id).name; // "executor"
 */
import { Code, MeshError } from "../errors/mesh-error.js";
import type { PeerIdentity } from "../rpc/authorizer.js";

export type { PeerIdentity } from "../rpc/authorizer.js";

/** The mesh's own components; agents are `agent-<name>`, the CLI is `cli`. */
export const serviceNames = [
  "registry",
  "planner",
  "executor",
  "learning",
  "gateway",
  "cli",
] as const;
export type ServiceName = (typeof serviceNames)[number];

/** Default SPIFFE trust domain (`AGENTMESH_TRUST_DOMAIN`). */
export const defaultTrustDomain = "agentmesh.local";
/** Default SPIFFE namespace (`AGENTMESH_NAMESPACE`). */
export const defaultNamespace = "agentmesh";

/** Parts of a SPIFFE ID; `trustDomain` and `namespace` default to the mesh defaults. */
export interface SpiffeIdParts {
  trustDomain?: string;
  namespace?: string;
  name: string;
}

// Trust domain: lowercase letters, digits, dots, dashes, underscores (SPIFFE spec).
const trustDomainPattern = /^[a-z0-9._-]{1,255}$/;
// Namespace and service-account names: DNS-label-like, as Kubernetes requires.
const segmentPattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const idPattern = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** Builds a SPIFFE ID, validating every part; throws INVALID_ARGUMENT on a bad part. */
export function spiffeId(parts: SpiffeIdParts): string {
  const trustDomain = parts.trustDomain ?? defaultTrustDomain;
  const namespace = parts.namespace ?? defaultNamespace;
  checkParts(trustDomain, namespace, parts.name);
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${parts.name}`;
}

/** Parses a SPIFFE ID of the mesh's shape; throws INVALID_ARGUMENT when it is not one. */
export function parseSpiffeId(id: string): PeerIdentity {
  const parsed = tryParseSpiffeId(id);
  if (!parsed) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid SPIFFE ID ${JSON.stringify(id.slice(0, 300))}: expected spiffe://<trust-domain>/ns/<namespace>/sa/<name>`,
    );
  }
  return parsed;
}

/** Like `parseSpiffeId` but returns undefined instead of throwing (for the hot path). */
export function tryParseSpiffeId(id: string): PeerIdentity | undefined {
  if (id.length > 2048) return undefined;
  const m = idPattern.exec(id);
  if (!m) return undefined;
  const [, trustDomain, namespace, name] = m as unknown as [string, string, string, string];
  if (
    !trustDomainPattern.test(trustDomain) ||
    !segmentPattern.test(namespace) ||
    !segmentPattern.test(name)
  ) {
    return undefined;
  }
  return { spiffeId: id, trustDomain, namespace, name };
}

/** True when `id` is a well-formed mesh SPIFFE ID. */
export function isSpiffeId(id: string): boolean {
  return tryParseSpiffeId(id) !== undefined;
}

/** The service-account name of an agent: `agentName("text")` → `agent-text`. */
export function agentName(name: string): string {
  const full = `agent-${name}`;
  if (!segmentPattern.test(full)) {
    throw new MeshError(Code.InvalidArgument, `invalid agent name ${JSON.stringify(name)}`);
  }
  return full;
}

/** True for `agent-<name>` service accounts. */
export function isAgentName(name: string): boolean {
  return name.startsWith("agent-") && name.length > 6 && segmentPattern.test(name);
}

/** True when `name` is a valid service-account name (a component, `cli`, or `agent-<name>`). */
export function isValidName(name: string): boolean {
  return segmentPattern.test(name);
}

function checkParts(trustDomain: string, namespace: string, name: string): void {
  if (!trustDomainPattern.test(trustDomain)) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid trust domain ${JSON.stringify(trustDomain)}`,
    );
  }
  if (!segmentPattern.test(namespace)) {
    throw new MeshError(Code.InvalidArgument, `invalid namespace ${JSON.stringify(namespace)}`);
  }
  if (!segmentPattern.test(name)) {
    throw new MeshError(
      Code.InvalidArgument,
      `invalid service account name ${JSON.stringify(name)}: lowercase letters, digits and dashes`,
    );
  }
}

/**
 * The SPIFFE IDs among the URI SANs of a certificate, as Node prints them in
 * `PeerCertificate.subjectaltname` / `X509Certificate.subjectAltName`
 * (`"DNS:a, URI:spiffe://..."`; values with special characters are JSON-quoted).
 */
export function spiffeIdsFromSubjectAltName(san: string | undefined): string[] {
  if (!san) return [];
  const out: string[] = [];
  let i = 0;
  while (i < san.length) {
    const start = san.indexOf("URI:", i);
    if (start < 0) break;
    let value: string;
    let end: number;
    if (san[start + 4] === '"') {
      // JSON-quoted value: find the closing quote that is not escaped.
      end = start + 5;
      while (end < san.length && san[end] !== '"') end += san[end] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(san.slice(start + 4, end + 1)) as string;
      } catch {
        value = "";
      }
      end += 1;
    } else {
      end = san.indexOf(", ", start);
      if (end < 0) end = san.length;
      value = san.slice(start + 4, end);
    }
    if (value.startsWith("spiffe://")) out.push(value);
    i = end;
  }
  return out;
}

/** The one SPIFFE ID of a certificate's SAN string, or undefined when there is none or more than one. */
export function peerFromSubjectAltName(san: string | undefined): PeerIdentity | undefined {
  const ids = spiffeIdsFromSubjectAltName(san);
  // SPIFFE X.509-SVIDs carry exactly one URI SAN; anything else is not an SVID.
  if (ids.length !== 1) return undefined;
  return tryParseSpiffeId(ids[0] as string);
}
