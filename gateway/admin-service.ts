/**
 * AdminService, served by the gateway itself because the gateway owns the
 * authentication data: tenants and their API keys in `lib/store`. The policy
 * has already decided who may call what (platform admins everything, tenant
 * admins their own tenant's keys); on top of that a caller may only grant
 * roles it holds itself, so a tenant admin cannot mint a platform admin.
 *
 * @example
 * const admin = adminHandlers({ store, onRevoke: (id) => apiKeys.forget(id) });
 */
import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type ApiKey,
  ApiKeySchema,
  type CreateApiKeyRequest,
  type CreateTenantRequest,
  type GetTenantRequest,
  type ListApiKeysRequest,
  type ListTenantsRequest,
  type RevokeApiKeyRequest,
  type Tenant,
  type TenantFeatures,
  TenantSchema,
} from "../gen/agentmesh/v1/admin_pb.js";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import { adminActionEvent } from "../lib/store/audit-log.js";
import type { ApiKeyRecord, TenantRecord } from "../lib/store/records.js";
import type { Store } from "../lib/store/store.js";
import { checkTenantId } from "../lib/store/tenant-repository.js";
import { goalLimitsOf } from "../lib/tenancy/tenant-settings.js";
import type { LocalHandler } from "./forward.js";
import { featuresByTenant, tenantAdminHandlers, tenantFeatures } from "./tenant-admin.js";
import { requestLimitsMessage, requestLimitsRecord } from "./tenant-limits.js";

/** Roles and the roles each includes (mirrors `policies/data.json`). */
export const roleIncludes: Readonly<Record<string, readonly string[]>> = {
  "platform.admin": ["tenant.admin", "capabilities.run", "goals.write", "goals.read"],
  "tenant.admin": ["goals.write", "goals.read"],
  // Runs single capabilities as goals (the MCP capability tools): granted by the platform only.
  "capabilities.run": ["goals.write", "goals.read"],
  "goals.write": ["goals.read"],
  "goals.read": [],
};

export interface AdminHandlersOptions {
  store: Store;
  /** Called after a key is revoked (drop it from the authentication cache). */
  onRevoke?: (keyId: string) => void;
  /** Called after a tenant's limits, flags or suspension changed. */
  onTenantChanged?: (tenantId: string) => void;
}

export function adminHandlers(options: AdminHandlersOptions): Record<string, LocalHandler> {
  const { store, onRevoke } = options;
  const tenantAdmin = tenantAdminHandlers({
    store,
    tenantMessage,
    ...(options.onTenantChanged ? { onTenantChanged: options.onTenantChanged } : {}),
  });
  const audit = (principal: Principal, what: string, resource: string, tenantId: string) => {
    // The audit log is a record, not a gate: a failed append is logged by the store, the action stands.
    store.audit
      .append(
        adminActionEvent({
          actor: `${principal.tenantId}/${principal.subject}`,
          what,
          resource,
          tenantId,
        }),
      )
      .catch(() => undefined);
  };
  const handlers = {
    async createTenant(req: CreateTenantRequest, principal: Principal) {
      const t = req.tenant;
      if (!t) throw invalid("tenant is required");
      checkTenantId(t.tenantId);
      if (!(t.rateLimitPerSecond >= 0) || !Number.isFinite(t.rateLimitPerSecond)) {
        throw invalid("rate_limit_per_second must be a finite number ≥ 0");
      }
      const limits = requestLimitsRecord(t.requestLimits);
      if (t.maxConcurrentGoals > 0) limits.maxConcurrentGoals = t.maxConcurrentGoals;
      if (t.maxGoalInputBytes > 0) limits.maxGoalInputBytes = t.maxGoalInputBytes;
      const record = await store.tenants.create({
        id: t.tenantId,
        displayName: t.displayName || t.tenantId,
        rateLimitPerSecond: t.rateLimitPerSecond,
        maxConcurrentStreams: t.maxConcurrentStreams,
        limits,
      });
      audit(principal, "tenant.created", `tenant/${record.id}`, record.id);
      return { tenant: tenantMessage(record, await tenantFeatures(store, record.id)) };
    },
    async getTenant(req: GetTenantRequest) {
      const tenantId = checkTenantId(req.tenantId);
      const record = await store.tenants.get(tenantId);
      return { tenant: tenantMessage(record, await tenantFeatures(store, tenantId)) };
    },
    async listTenants(req: ListTenantsRequest) {
      const page = await store.tenants.list({
        pageSize: req.pageSize || 100,
        ...(req.pageToken ? { pageToken: req.pageToken } : {}),
      });
      const features = await featuresByTenant(store);
      return {
        tenants: page.tenants.map((t) => tenantMessage(t, features(t.id))),
        nextPageToken: page.nextPageToken,
      };
    },
    async createApiKey(req: CreateApiKeyRequest, principal: Principal) {
      const tenantId = checkTenantId(req.tenantId);
      const name = req.name.trim() || "key";
      if (name.length > 128) throw invalid("name is longer than 128 characters");
      if (req.roles.length === 0) throw invalid("roles: grant at least one role");
      const held = effectiveRoles(principal.roles);
      for (const role of req.roles) {
        if (!(role in roleIncludes)) {
          throw invalid(
            `unknown role ${JSON.stringify(role)}; known: ${Object.keys(roleIncludes).join(", ")}`,
          );
        }
        if (!held.has(role)) {
          throw new MeshError(
            Code.PermissionDenied,
            `you may not grant ${role}: you do not hold it`,
          );
        }
      }
      let expiresAt: Date | null = null;
      if (req.expiresAt) {
        expiresAt = timestampDate(req.expiresAt);
        if (expiresAt.getTime() <= Date.now()) throw invalid("expires_at is in the past");
      }
      const { keyId, secret, secretHash } = newApiKey();
      const record = await store
        .tenant(tenantId)
        .apiKeys.create({ keyId, secretHash, name, roles: [...new Set(req.roles)], expiresAt });
      audit(principal, "apikey.created", `apikey/${keyId}`, tenantId);
      return { key: keyMessage(record), secret };
    },
    async listApiKeys(req: ListApiKeysRequest) {
      const tenantId = checkTenantId(req.tenantId);
      await store.tenants.get(tenantId);
      return { keys: (await store.tenant(tenantId).apiKeys.list()).map(keyMessage) };
    },
    async revokeApiKey(req: RevokeApiKeyRequest, principal: Principal) {
      const tenantId = checkTenantId(req.tenantId);
      if (!req.keyId) throw invalid("key_id is required");
      const record = await store.tenant(tenantId).apiKeys.revoke(req.keyId);
      onRevoke?.(record.keyId);
      audit(principal, "apikey.revoked", `apikey/${record.keyId}`, tenantId);
      return { key: keyMessage(record) };
    },
    ...tenantAdmin,
  };
  const out: Record<string, LocalHandler> = {};
  for (const [name, fn] of Object.entries(handlers)) {
    out[name] = (request, _ctx, principal) =>
      (fn as (r: unknown, p: Principal) => Promise<unknown>)(request, principal);
  }
  return out;
}

/** A role set closed under inclusion. */
export function effectiveRoles(roles: readonly string[]): Set<string> {
  const out = new Set<string>();
  const visit = (r: string) => {
    if (out.has(r)) return;
    out.add(r);
    for (const inc of roleIncludes[r] ?? []) visit(inc);
  };
  for (const r of roles) visit(r);
  return out;
}

function invalid(message: string): MeshError {
  return new MeshError(Code.InvalidArgument, message);
}

function ts(d: Date | null | undefined): Timestamp | undefined {
  return d ? timestampFromDate(d) : undefined;
}

export function tenantMessage(r: TenantRecord, features?: TenantFeatures): Tenant {
  const goals = goalLimitsOf(r.limits);
  return create(TenantSchema, {
    tenantId: r.id,
    displayName: r.displayName,
    createdAt: ts(r.createdAt),
    rateLimitPerSecond: r.rateLimitPerSecond,
    maxConcurrentStreams: r.maxConcurrentStreams,
    requestLimits: requestLimitsMessage(r.limits),
    maxConcurrentGoals: goals.maxConcurrentGoals,
    maxGoalInputBytes: goals.maxGoalInputBytes,
    stepQuotas: { ...goals.stepQuotas },
    ...(features ? { features } : {}),
    suspendedAt: ts(r.suspendedAt),
    suspendedReason: r.suspendedReason,
  });
}

export function keyMessage(r: ApiKeyRecord): ApiKey {
  return create(ApiKeySchema, {
    keyId: r.keyId,
    tenantId: r.tenantId,
    name: r.name,
    roles: r.roles,
    createdAt: ts(r.createdAt),
    expiresAt: ts(r.expiresAt),
    revokedAt: ts(r.revokedAt),
  });
}
