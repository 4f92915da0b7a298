/**
 * Which audit-log rows are security events. The audit log is the one choke
 * point every policy denial (gateway and dispatch), admin action and
 * refused bus result already passes through, so `AuditLog.append` hands
 * each stored row here instead of every call site emitting twice.
 */
import type { SecurityEvent } from "./security-event.js";

export interface AuditRowLike {
  actor: string;
  action: string;
  resource: string;
  tenantId?: string | null;
  details?: Record<string, unknown>;
}

/** Actions by people or services that change tenants, keys or policy-relevant state. */
const adminActions = /^(admin\.|tenant\.|tenant_keys?\.|keys?\.|playbook\.|retention\.)/;

export function securityEventOfAudit(row: AuditRowLike): SecurityEvent | undefined {
  const base = {
    tenantId: row.tenantId ?? null,
    identity: row.actor,
    resource: row.resource,
    action: row.action,
    details: row.details,
  };
  const reason = typeof row.details?.reason === "string" ? row.details.reason : undefined;
  if (row.action === "policy.denied") {
    const method = typeof row.details?.method === "string" ? row.details.method : row.resource;
    const principal = row.details?.principal;
    return {
      ...base,
      // The principal the peer acted for is who was denied; the peer stays in the details.
      identity: typeof principal === "string" ? principal : row.actor,
      details: { ...row.details, peer: row.actor },
      kind: "policy.denial",
      resource: method,
      message: `policy denied ${method}${reason ? `: ${reason}` : ""}`,
    };
  }
  if (row.action === "result.refused") {
    return {
      ...base,
      kind: "bus.forged",
      message: `bus result refused from ${row.actor}${reason ? `: ${reason}` : ""}`,
    };
  }
  if (adminActions.test(row.action)) {
    return { ...base, kind: "admin.action", message: `${row.actor} ${row.action} ${row.resource}` };
  }
  return undefined;
}
