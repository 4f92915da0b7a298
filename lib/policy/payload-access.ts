/**
 * Sensitive fields on the way out of a mesh service (the executor's goals,
 * the planner's playbooks and plans). For every tenant, sensitive fields
 * (`(agentmesh.v1.sensitive)` in the contract) go out in clear only to
 * principals the policy lets write the tenant's goals (SubmitGoal, so
 * `goals.write` and above) and to mesh services calling for themselves;
 * everyone else gets them redacted, so no client (the console included) is
 * trusted to hide them. For a tenant with encryption at rest on, every such
 * read, clear or redacted, is also audited: who, which tenant, which
 * resources, which fields. The question is asked on every read; its "no"
 * refuses nothing, so pass a check that samples it in the decision log
 * (`runtime.policyCheck(component, id, { sampleDenials: true })`).
 *
 * @example
 * const access = payloadAccess({ store, check: runtime.policyCheck("executor", id, { sampleDenials: true }) });
 * await access.read(ctx, tenantId, GoalSchema, [goal], { kind: "goal", ids: [goal.goalId] });
 */
import { clone, create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { ExecutorService, SubmitGoalRequestSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { redactSensitive, sensitiveFields } from "../proto/sensitive-fields.js";
import type { Decision } from "../rpc/authorizer.js";
import type { HandlerContext } from "../rpc/handler.js";
import type { Store } from "../store/store.js";
import type { PolicyInput } from "./input.js";
import { buildPolicyInput } from "./input.js";

/** What was read, for the audit: `goal/ID` for one, `goals/N` for several (ids in details). */
export interface ReadResources {
  /** Singular resource name, e.g. "goal" or "playbook". */
  kind: string;
  ids: string[];
  /**
   * The messages are shared (a cache's): redact copies and leave them as they are.
   * Otherwise they are redacted in place.
   */
  shared?: boolean;
}

export interface PayloadAccess {
  /** The messages to send: the caller's view of `messages` (redacted where it may not see); audits the read. */
  read<D extends DescMessage>(
    ctx: HandlerContext,
    tenantId: string,
    schema: D,
    messages: MessageShape<D>[],
    what: ReadResources,
  ): Promise<MessageShape<D>[]>;
  /** A stream's messages: decides once per stream, audits once, returns what redacts each message. */
  watch<D extends DescMessage>(
    ctx: HandlerContext,
    tenantId: string,
    schema: D,
    what: Omit<ReadResources, "shared">,
  ): Promise<(message: MessageShape<D>) => void>;
}

/** At most this many resource ids in one audit record of a list. */
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
    what: Omit<ReadResources, "shared">,
    fields: string[],
    clear: boolean,
  ) => {
    await deps.store.audit.append({
      actor: actorOf(ctx),
      action: clear ? "payload.read" : "payload.redacted",
      resource:
        what.ids.length === 1 ? `${what.kind}/${what.ids[0]}` : `${what.kind}s/${what.ids.length}`,
      tenantId,
      details: {
        [`${what.kind}s`]: what.ids.slice(0, maxAuditedIds),
        fields: [...new Set(fields.map((f) => f.replace(/\[\d+\]/g, "[]")))].sort(),
        method: ctx.method.name,
        traceId: ctx.traceId,
      },
    });
  };
  // Redacted copies of shared lists (a cache's, never changed), made once per list: a
  // reader's ListPlaybooks cloned and redacted every playbook on every call.
  const redactedLists = new WeakMap<readonly unknown[], { shown: unknown[]; fields: string[] }>();
  const redactedCopies = <D extends DescMessage>(schema: D, messages: MessageShape<D>[]) => {
    let done = redactedLists.get(messages) as
      | { shown: MessageShape<D>[]; fields: string[] }
      | undefined;
    if (done === undefined) {
      const shown = messages.map((m) => clone(schema, m));
      done = { shown, fields: shown.flatMap((m) => redactSensitive(schema, m)) };
      redactedLists.set(messages, done);
    }
    return done;
  };
  return {
    async read(ctx, tenantId, schema, messages, what) {
      if (messages.length === 0) return messages;
      const clear = mayRead(ctx, tenantId);
      const audited = await protectedTenant(tenantId);
      if (clear && !audited) return messages;
      if (what.shared) {
        const { shown, fields } = redactedCopies(schema, messages);
        if (audited && fields.length > 0) await audit(ctx, tenantId, what, fields, clear);
        return clear ? messages : shown;
      }
      // Redact copies when the caller may read the originals: a clear read is redacted only
      // to learn the paths for its audit.
      const shown = clear ? messages.map((m) => clone(schema, m)) : messages;
      const fields = shown.flatMap((m) => redactSensitive(schema, m));
      if (audited && fields.length > 0) await audit(ctx, tenantId, what, fields, clear);
      return clear ? messages : shown;
    },
    async watch(ctx, tenantId, schema, what) {
      const clear = mayRead(ctx, tenantId);
      if (await protectedTenant(tenantId)) {
        await audit(ctx, tenantId, what, sensitiveFields(schema), clear);
      }
      return clear ? () => undefined : (m) => void redactSensitive(schema, m);
    },
  };
}
