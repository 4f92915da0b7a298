/**
 * A security event as the mesh sees it, before any wire format: what
 * happened, to which tenant, by which identity, under which trace. The SIEM
 * exporter maps it to OCSF (`ocsf.ts`); call sites only fill this shape.
 *
 * @example
 * emitSecurityEvent({ kind: "auth.failure", identity: "acme/bob", tenantId: "acme", message: "bad api key" });
 */

/** The security events the mesh reports. */
export type SecurityEventKind =
  | "auth.failure"
  | "policy.denial"
  | "admin.action"
  | "sandbox.refusal"
  | "bus.forged"
  | "audit.verify_failed"
  | "cert.rotated"
  | "cert.expiring"
  | "cert.expired";

export interface SecurityEvent {
  kind: SecurityEventKind;
  /** ms since the epoch; default now. */
  time?: number;
  tenantId?: string | null;
  /** Who: a SPIFFE ID, `tenant/subject`, an API key id, or `system`. */
  identity?: string | null;
  /** W3C trace id (32 hex) of the request, when there is one. */
  traceId?: string | null;
  /** What was asked or changed, e.g. `agentmesh.v1.ExecutorService/SubmitGoal` or `tenant/acme`. */
  resource?: string | null;
  /** Dot-separated verb for admin actions (the audit action, e.g. `tenant.created`). */
  action?: string | null;
  /** One human line. */
  message: string;
  /** Extra structured facts; never secrets. */
  details?: Record<string, unknown>;
}
