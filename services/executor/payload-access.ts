/**
 * Sensitive fields on the way out of the executor. For every tenant, a goal's
 * sensitive fields (`(agentmesh.v1.sensitive)` in the contract) go out in
 * clear only to principals the policy lets write the tenant's goals
 * (SubmitGoal, so `goals.write` and above) and to mesh services calling for
 * themselves; everyone else gets them redacted, so no client (the console
 * included) is trusted to hide them. For a tenant with encryption at rest on,
 * every such read, clear or redacted, is also audited: who, which tenant,
 * which goals, which fields.
 *
 * @example
 * const access = payloadAccess({ store, check: runtime.policyCheck("executor", id) });
 * await access.goals(ctx, tenantId, [goal]); // redacts in place, audits
 */
import { create } from "@bufbuild/protobuf";
import {
  ExecutorService,
  type Goal,
  type GoalEvent,
  GoalEventSchema,
  GoalSchema,
  SubmitGoalRequestSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import { buildPolicyInput } from "../../lib/policy/input.js";
import { redactSensitive, sensitiveFields } from "../../lib/proto/sensitive-fields.js";
import type { Decision } from "../../lib/rpc/authorizer.js";
import type { HandlerContext } from "../../lib/rpc/handler.js";
import type { Store } from "../../lib/store/store.js";

export interface PayloadAccess {
  /** Redacts (in place) what the caller may not see of these goals and audits the read. */
  goals(ctx: HandlerContext, tenantId: string, goals: Goal[]): Promise<void>;
  /** A watch's events: decides once per watch, audits once, redacts each event. */
  watch(ctx: HandlerContext, tenantId: string, goalId: string): Promise<(e: GoalEvent) => void>;
}

/** At most this many goal ids in one audit record of a list. */
const maxAuditedIds = 100;

export function payloadAccess(deps: {
  store: Store;
  /** The policy (`runtime.policyCheck`); none: only mesh services calling for themselves see clear text. */
  check?: (input: PolicyInput) => Decision;
}): PayloadAccess {
  const protectedTenant = async (tenantId: string) =>
    (await deps.store.cipher.mode(tenantId)) !== "off";
  const mayRead = (ctx: HandlerContext, tenantId: string): boolean => {
    if (!ctx.principal) return true; // a mesh service for itself: the peer was verified and authorized
    if (!deps.check) return false;
    return deps.check(
      buildPolicyInput({
        peer: ctx.peer,
        principal: ctx.principal,
        method: ExecutorService.method.submitGoal,
        request: create(SubmitGoalRequestSchema, { tenantId }),
      }),
    ).allow;
  };
  const actorOf = (ctx: HandlerContext) =>
    ctx.principal ? `${ctx.principal.tenantId}/${ctx.principal.subject}` : ctx.peer.spiffeId;
  const audit = async (
    ctx: HandlerContext,
    tenantId: string,
    goalIds: string[],
    fields: string[],
    clear: boolean,
  ) => {
    await deps.store.audit.append({
      actor: actorOf(ctx),
      action: clear ? "payload.read" : "payload.redacted",
      resource: goalIds.length === 1 ? `goal/${goalIds[0]}` : `goals/${goalIds.length}`,
      tenantId,
      details: {
        goals: goalIds.slice(0, maxAuditedIds),
        fields: [...new Set(fields.map((f) => f.replace(/\[\d+\]/g, "[]")))].sort(),
        method: ctx.method.name,
        traceId: ctx.traceId,
      },
    });
  };
  return {
    async goals(ctx, tenantId, goals) {
      if (goals.length === 0) return;
      const clear = mayRead(ctx, tenantId);
      const audited = await protectedTenant(tenantId);
      if (clear && !audited) return;
      const fields: string[] = [];
      for (const g of goals) {
        // Redact a copy to learn the paths; keep the original when the caller may read.
        const paths = redactSensitive(GoalSchema, clear ? structuredClone(g) : g);
        fields.push(...paths);
      }
      if (audited && fields.length > 0) {
        await audit(
          ctx,
          tenantId,
          goals.map((g) => g.goalId),
          fields,
          clear,
        );
      }
    },
    async watch(ctx, tenantId, goalId) {
      const clear = mayRead(ctx, tenantId);
      if (await protectedTenant(tenantId)) {
        await audit(ctx, tenantId, [goalId], sensitiveFields(GoalEventSchema), clear);
      }
      return clear ? () => undefined : (e) => void redactSensitive(GoalEventSchema, e);
    },
  };
}
