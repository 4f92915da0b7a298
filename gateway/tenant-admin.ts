/**
 * Tenant administration (AdminService UpdateTenant, SuspendTenant,
 * ResumeTenant, GetTenantUsage): a tenant's limits and feature flags, its
 * suspension and its usage. Each change is written with its audit record in
 * one transaction, so no change goes unaudited and a refused change writes
 * nothing. Where each limit is enforced: request rate and streams at the
 * gateways (`tenant-limits.ts`), concurrent goals and goal input at the
 * executor's SubmitGoal, step quotas at dispatch (`lib/tenancy`).
 *
 * @example
 * const handlers = tenantAdminHandlers({ store, onTenantChanged: (t) => limits.forget(t) });
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import type {
  GetTenantUsageRequest,
  ResumeTenantRequest,
  SuspendTenantRequest,
  UpdateTenantRequest,
} from "../gen/agentmesh/v1/admin_pb.js";
import {
  type Tenant,
  type TenantFeatures,
  TenantFeaturesSchema,
} from "../gen/agentmesh/v1/admin_pb.js";
import type { Principal } from "../gen/agentmesh/v1/common_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import { capabilityNameProblem } from "../lib/plan/capability.js";
import { adminActionEvent } from "../lib/store/audit-log.js";
import type { FeatureFlagRecord, TenantRecord } from "../lib/store/records.js";
import type { Store, StoreTransaction } from "../lib/store/store.js";
import { checkTenantId, type TenantPatch } from "../lib/store/tenant-repository.js";
import { flagOff, goalLimitsOf, tenantFlags } from "../lib/tenancy/tenant-settings.js";
import { builtinSelectors } from "../services/learning/domain/selector-registry.js";
import { requestBucketKey, requestLimitsRecord } from "./tenant-limits.js";

/** At most this many step quotas per tenant. */
const maxStepQuotas = 100;

export interface TenantAdminOptions {
  store: Store;
  /** Called after a tenant's settings changed (re-read its limits now). */
  onTenantChanged?: (tenantId: string) => void;
  /** The Tenant message of a record and its features. */
  tenantMessage: (record: TenantRecord, features: TenantFeatures) => Tenant;
}

/** The tenant's effective feature flags. */
export async function tenantFeatures(
  store: Pick<Store, "flags">,
  tenantId: string,
): Promise<TenantFeatures> {
  const [selector, llm, canary] = await Promise.all(
    Object.values(tenantFlags).map((key) => store.flags.resolve(key, { tenantId })),
  );
  return featuresOf(selector, llm, canary);
}

/** Every tenant's feature flags from three flag lists (ListTenants). */
export async function featuresByTenant(
  store: Pick<Store, "flags">,
): Promise<(tenantId: string) => TenantFeatures> {
  const lists = await Promise.all(
    Object.values(tenantFlags).map((key) => store.flags.list({ key })),
  );
  const pick = (list: FeatureFlagRecord[], tenantId: string) =>
    list.find((f) => f.tenantId === tenantId && !f.goalKind) ??
    list.find((f) => !f.tenantId && !f.goalKind);
  return (tenantId) =>
    featuresOf(
      pick(lists[0] ?? [], tenantId),
      pick(lists[1] ?? [], tenantId),
      pick(lists[2] ?? [], tenantId),
    );
}

function featuresOf(
  selector: FeatureFlagRecord | undefined,
  llm: FeatureFlagRecord | undefined,
  canary: FeatureFlagRecord | undefined,
): TenantFeatures {
  return create(TenantFeaturesSchema, {
    learningSelector: typeof selector?.value === "string" ? selector.value : "",
    llmPlanner: !flagOff(llm?.value),
    canary: !flagOff(canary?.value),
  });
}

export function tenantAdminHandlers(options: TenantAdminOptions) {
  const { store } = options;
  const actorOf = (p: Principal) => `${p.tenantId}/${p.subject}`;

  /** Applies `change` and its audit record in one transaction; answers the tenant as changed. */
  const changing = async (
    tenantId: string,
    what: string,
    details: JsonObject,
    principal: Principal,
    change: (tx: StoreTransaction, before: TenantRecord) => Promise<void>,
  ) => {
    const record = await store.transaction(async (tx) => {
      const before = await tx.tenants.get(tenantId);
      await change(tx, before);
      await tx.audit.append(
        adminActionEvent({
          actor: actorOf(principal),
          what,
          resource: `tenant/${tenantId}`,
          tenantId,
          details,
        }),
      );
      return tx.tenants.get(tenantId);
    });
    options.onTenantChanged?.(tenantId);
    return { tenant: options.tenantMessage(record, await tenantFeatures(store, tenantId)) };
  };

  return {
    async updateTenant(req: UpdateTenantRequest, principal: Principal) {
      const tenantId = checkTenantId(req.tenantId);
      const patch: TenantPatch = {};
      const details: JsonObject = {};
      if (req.displayName !== undefined) {
        const name = req.displayName.trim();
        if (name === "" || name.length > 256) throw invalid("display_name: 1 to 256 characters");
        patch.displayName = details.displayName = name;
      }
      if (req.rateLimitPerSecond !== undefined) {
        if (!Number.isFinite(req.rateLimitPerSecond) || req.rateLimitPerSecond < 0) {
          throw invalid("rate_limit_per_second must be a finite number ≥ 0");
        }
        patch.rateLimitPerSecond = details.rateLimitPerSecond = req.rateLimitPerSecond;
      }
      if (req.maxConcurrentStreams !== undefined) {
        patch.maxConcurrentStreams = details.maxConcurrentStreams = req.maxConcurrentStreams;
      }
      const quotas = Object.entries(req.stepQuotas);
      for (const [capability] of quotas) {
        const name = capability.endsWith(".*") ? capability.slice(0, -2) : capability;
        const problem = capabilityNameProblem(name);
        if (problem) throw invalid(`step_quotas: ${problem}`);
      }
      if (req.learningSelector !== undefined && req.learningSelector !== "") {
        if (!(req.learningSelector in builtinSelectors)) {
          throw invalid(
            `learning_selector: unknown selector ${JSON.stringify(req.learningSelector.slice(0, 64))}; known: ${Object.keys(builtinSelectors).join(", ")}`,
          );
        }
      }
      const touchesLimits =
        req.maxConcurrentGoals !== undefined ||
        req.maxGoalInputBytes !== undefined ||
        quotas.length > 0 ||
        req.requestLimits !== undefined;
      if (req.requestLimits) details.requestLimits = requestLimitsRecord(req.requestLimits);
      if (req.maxConcurrentGoals !== undefined) details.maxConcurrentGoals = req.maxConcurrentGoals;
      if (req.maxGoalInputBytes !== undefined) details.maxGoalInputBytes = req.maxGoalInputBytes;
      if (quotas.length > 0) details.stepQuotas = Object.fromEntries(quotas);
      for (const key of ["learningSelector", "llmPlanner", "canary"] as const) {
        if (req[key] !== undefined) details[key] = req[key];
      }
      if (Object.keys(details).length === 0) throw invalid("nothing to change");
      return changing(tenantId, "tenant.updated", details, principal, async (tx, before) => {
        if (touchesLimits) {
          const limits: JsonObject = { ...before.limits };
          if (req.requestLimits) {
            for (const k of [
              "maxRequestBytes",
              "maxRequestDepth",
              "maxListLength",
              "maxRequestValues",
            ]) {
              delete limits[k];
            }
            Object.assign(limits, requestLimitsRecord(req.requestLimits));
          }
          const put = (key: string, value: number | undefined) => {
            if (value === undefined) return;
            if (value > 0) limits[key] = value;
            else delete limits[key];
          };
          put("maxConcurrentGoals", req.maxConcurrentGoals);
          put("maxGoalInputBytes", req.maxGoalInputBytes);
          if (quotas.length > 0) {
            const merged: Record<string, number> = { ...goalLimitsOf(before.limits).stepQuotas };
            for (const [capability, perMinute] of quotas) {
              if (perMinute > 0) merged[capability] = perMinute;
              else delete merged[capability];
            }
            if (Object.keys(merged).length > maxStepQuotas) {
              throw invalid(`step_quotas: at most ${maxStepQuotas} per tenant`);
            }
            limits.stepQuotas = merged;
          }
          patch.limits = limits;
        }
        if (Object.keys(patch).length > 0) await tx.tenants.update(tenantId, patch);
        if (req.learningSelector !== undefined) {
          if (req.learningSelector === "") {
            await tx.flags.delete({ key: tenantFlags.learningSelector, tenantId });
          } else {
            await tx.flags.set({
              key: tenantFlags.learningSelector,
              value: req.learningSelector,
              tenantId,
            });
          }
        }
        for (const key of ["llmPlanner", "canary"] as const) {
          const on = req[key];
          if (on === undefined) continue;
          // On is the default: a tenant switched back on has no row of its own.
          if (on) await tx.flags.delete({ key: tenantFlags[key], tenantId });
          else await tx.flags.set({ key: tenantFlags[key], value: "false", tenantId });
        }
      });
    },

    async suspendTenant(req: SuspendTenantRequest, principal: Principal) {
      const tenantId = checkTenantId(req.tenantId);
      if (tenantId === principal.tenantId) {
        throw new MeshError(
          Code.FailedPrecondition,
          "you may not suspend your own tenant (you could not resume it)",
        );
      }
      if (req.reason.length > 1024) throw invalid("reason is longer than 1024 characters");
      return changing(
        tenantId,
        "tenant.suspended",
        { reason: req.reason },
        principal,
        async (tx, before) => {
          if (before.suspendedAt) return; // already suspended: keep the first time and reason
          await tx.tenants.update(tenantId, {
            suspendedAt: new Date(),
            suspendedReason: req.reason,
          });
        },
      );
    },

    async resumeTenant(req: ResumeTenantRequest, principal: Principal) {
      const tenantId = checkTenantId(req.tenantId);
      return changing(tenantId, "tenant.resumed", {}, principal, async (tx) => {
        await tx.tenants.update(tenantId, { suspendedAt: null, suspendedReason: "" });
      });
    },

    async getTenantUsage(req: GetTenantUsageRequest) {
      const tenantId = checkTenantId(req.tenantId);
      await store.tenants.get(tenantId);
      const [byStatus, inFlight, requests] = await Promise.all([
        store.tenants.goalCounts(tenantId),
        store.tenants.goalsInFlight(tenantId),
        store.buckets.counts(requestBucketKey(tenantId)),
      ]);
      return {
        usage: {
          tenantId,
          goalsByStatus: Object.fromEntries(
            Object.entries(byStatus).map(([k, v]) => [k, BigInt(v)]),
          ),
          goalsInFlight: BigInt(inFlight),
          requestsAdmitted: BigInt(requests.admitted),
          requestsRefused: BigInt(requests.refused),
        },
      };
    },
  };
}

function invalid(message: string): MeshError {
  return new MeshError(Code.InvalidArgument, message);
}
