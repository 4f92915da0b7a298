/**
 * The policy's recent decisions on public calls at this gateway, allowed and
 * denied, kept in memory for the console and `AdminService/ListPolicyDecisions`
 * (the audit log keeps every denial durably; each service's decision log
 * keeps its own decisions). Two rings, so a flood of allowed calls never
 * pushes the denials out. Each decision keeps what the policy read of the
 * call (`resource` and the bounded `request` view), which never holds goal
 * inputs, sensitive or secret-looking fields (`lib/policy/request-view.ts`).
 * They are fed by the gateway's authorizer (`observe`, an `observeDecisions`
 * observer) with the input the policy was given, so nothing is built twice.
 */
import type { DecisionObserver } from "../lib/policy/authorizer.js";
import type { JsonLike } from "../lib/policy/request-view.js";

export interface RecentDecision {
  /** ms since the epoch. */
  time: number;
  tenantId: string;
  subject: string;
  roles: string[];
  /** `agentmesh.v1.ExecutorService/SubmitGoal` */
  method: string;
  allow: boolean;
  reason: string;
  /** What the policy read: `{ resource, request }`. */
  input: { [key: string]: JsonLike };
}

export interface RecentDecisions {
  record(decision: RecentDecision): void;
  /** Records a decision of the policy on a call with a principal (a public call), from its input. */
  readonly observe: DecisionObserver;
  /** Newest first; only `tenantId`'s when given; only denials with `deniedOnly`. */
  list(options?: { tenantId?: string; deniedOnly?: boolean; limit?: number }): RecentDecision[];
}

/** Decisions kept: the last 500 of any kind and, apart, the last 200 denials. */
export function createRecentDecisions(capacity = 500, denialCapacity = 200): RecentDecisions {
  const all = ring<RecentDecision>(capacity);
  const denials = ring<RecentDecision>(denialCapacity);
  const record = (decision: RecentDecision) => {
    all.push(decision);
    if (!decision.allow) denials.push(decision);
  };
  return {
    record,
    observe(input, decision) {
      const principal = input.principal;
      if (principal === undefined) return;
      // The input is the call's own (built for this decision) and never changed: kept as is.
      record({
        time: input.time.unix_ms,
        tenantId: principal.tenant_id,
        subject: principal.subject,
        roles: principal.roles,
        method: input.method.full,
        allow: decision.allow,
        reason: decision.reason,
        input: { resource: input.resource as { [key: string]: JsonLike }, request: input.request },
      });
    },
    list({ tenantId, deniedOnly = false, limit = 100 } = {}) {
      return (deniedOnly ? denials : all).newest(
        limit,
        (d) => tenantId === undefined || d.tenantId === tenantId,
      );
    },
  };
}

function ring<T>(capacity: number) {
  const items: T[] = [];
  let next = 0;
  return {
    push(item: T) {
      if (items.length < capacity) items.push(item);
      else items[next] = item;
      next = (next + 1) % capacity;
    },
    newest(limit: number, keep: (item: T) => boolean): T[] {
      const out: T[] = [];
      for (let i = 0; i < items.length && out.length < limit; i++) {
        const item = items[(next - 1 - i + items.length) % items.length] as T;
        if (keep(item)) out.push(item);
      }
      return out;
    },
  };
}
