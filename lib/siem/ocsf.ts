/**
 * Maps a `SecurityEvent` to an OCSF 1.1.0 event (https://schema.ocsf.io/1.1.0):
 *
 * | kind | OCSF class | activity |
 * | --- | --- | --- |
 * | `auth.failure` | Authentication 3002 | 1 Logon, status 2 Failure |
 * | `policy.denial` | API Activity 6003 | 99 Other, status 2 Failure |
 * | `sandbox.refusal` | API Activity 6003 | 99 Other, status 2 Failure |
 * | `admin.action` | Entity Management 3004 | 1 Create / 3 Update / 4 Delete / 99 Other from the verb |
 * | `bus.forged` | Detection Finding 2004 | 1 Create |
 * | `audit.verify_failed` | Detection Finding 2004 | 1 Create |
 * | `cert.rotated` | Application Lifecycle 6002 | 8 Update |
 * | `cert.expiring` | Detection Finding 2004 (Medium) | 1 Create |
 * | `cert.expired` | Detection Finding 2004 (High) | 1 Create |
 *
 * `type_uid` is `class_uid * 100 + activity_id` as the schema defines it. The
 * tenant goes to `metadata.tenant_uid`, the trace id to
 * `metadata.correlation_uid`, the identity to `actor.user` (and `user` for
 * Authentication, whose subject it is).
 */
import type { SecurityEvent, SecurityEventKind } from "./security-event.js";

export const ocsfVersion = "1.1.0";

interface ClassInfo {
  classUid: number;
  className: string;
  categoryUid: number;
  categoryName: string;
  severityId: number;
}

const findings = { categoryUid: 2, categoryName: "Findings" };
const iam = { categoryUid: 3, categoryName: "Identity & Access Management" };
const application = { categoryUid: 6, categoryName: "Application Activity" };

/** Severity ids: 1 Informational, 2 Low, 3 Medium, 4 High. */
const classes: Record<SecurityEventKind, ClassInfo> = {
  "auth.failure": { classUid: 3002, className: "Authentication", ...iam, severityId: 3 },
  "policy.denial": { classUid: 6003, className: "API Activity", ...application, severityId: 2 },
  "sandbox.refusal": { classUid: 6003, className: "API Activity", ...application, severityId: 3 },
  "admin.action": { classUid: 3004, className: "Entity Management", ...iam, severityId: 1 },
  "bus.forged": { classUid: 2004, className: "Detection Finding", ...findings, severityId: 4 },
  "audit.verify_failed": {
    classUid: 2004,
    className: "Detection Finding",
    ...findings,
    severityId: 4,
  },
  "cert.rotated": {
    classUid: 6002,
    className: "Application Lifecycle",
    ...application,
    severityId: 1,
  },
  // A certificate still in use this close to its end means its rotation failed.
  "cert.expiring": {
    classUid: 2004,
    className: "Detection Finding",
    ...findings,
    severityId: 3,
  },
  "cert.expired": {
    classUid: 2004,
    className: "Detection Finding",
    ...findings,
    severityId: 4,
  },
};

const severityNames = ["Unknown", "Informational", "Low", "Medium", "High"];

function activity(event: SecurityEvent): { id: number; name: string } {
  switch (event.kind) {
    case "auth.failure":
      return { id: 1, name: "Logon" };
    case "bus.forged":
    case "audit.verify_failed":
    case "cert.expiring":
    case "cert.expired":
      return { id: 1, name: "Create" };
    case "cert.rotated":
      return { id: 8, name: "Update" };
    case "admin.action": {
      const verb = (event.action ?? "").split(".").at(-1) ?? "";
      if (/^(created|registered|added|issued)$/.test(verb)) return { id: 1, name: "Create" };
      if (/^(deleted|erased|revoked|removed|deregistered)$/.test(verb))
        return { id: 4, name: "Delete" };
      if (/^(updated|set|changed|rotated|enabled|disabled)$/.test(verb))
        return { id: 3, name: "Update" };
      return { id: 99, name: "Other" };
    }
    default:
      return { id: 99, name: "Other" };
  }
}

/** The OCSF object for `event` (plain JSON). */
export function toOcsf(
  event: SecurityEvent,
  product: { name: string; version?: string } = { name: "agentmesh" },
): Record<string, unknown> {
  const c = classes[event.kind];
  const a = activity(event);
  const time = event.time ?? Date.now();
  const failed = event.kind !== "admin.action" && event.kind !== "cert.rotated";
  const user = event.identity ? { name: event.identity, uid: event.identity } : undefined;
  const out: Record<string, unknown> = {
    class_uid: c.classUid,
    class_name: c.className,
    category_uid: c.categoryUid,
    category_name: c.categoryName,
    activity_id: a.id,
    activity_name: a.name,
    type_uid: c.classUid * 100 + a.id,
    type_name: `${c.className}: ${a.name}`,
    severity_id: c.severityId,
    severity: severityNames[c.severityId],
    time,
    message: event.message,
    metadata: {
      version: ocsfVersion,
      product: { name: product.name, vendor_name: "agentmesh", version: product.version },
      event_code: event.kind,
      tenant_uid: event.tenantId ?? undefined,
      correlation_uid: event.traceId ?? undefined,
    },
    actor: user ? { user } : undefined,
    unmapped: event.details,
  };
  if (c.classUid === 3002 || c.classUid === 6003) {
    out.status_id = failed ? 2 : 1;
    out.status = failed ? "Failure" : "Success";
  }
  if (c.classUid === 3002) out.user = user ?? { name: "unknown" };
  if (c.classUid === 6003) {
    out.api = { operation: event.resource ?? "unknown" };
    out.src_endpoint = {};
  }
  if (c.classUid === 3004) {
    out.entity = { name: event.resource ?? "unknown", type: event.action ?? undefined };
  }
  if (c.classUid === 2004) {
    out.finding_info = {
      uid: `${event.kind}:${time}`,
      title: event.message,
      types: [event.kind],
    };
    if (event.resource) out.resources = [{ name: event.resource }];
  }
  if (c.classUid === 6002) out.app = { name: event.resource ?? "agentmesh" };
  return JSON.parse(JSON.stringify(out)) as Record<string, unknown>;
}
