/**
 * The gateway's recent policy denials, kept in a small ring for the
 * dashboard (the audit log keeps every one durably).
 */

export interface Denial {
  /** ms since the epoch. */
  time: number;
  tenantId: string;
  subject: string;
  /** `agentmesh.v1.ExecutorService/SubmitGoal` */
  method: string;
  reason: string;
}

export interface DenialLog {
  record(denial: Denial): void;
  /** Newest first; only `tenantId`'s when given. */
  list(tenantId?: string, limit?: number): Denial[];
}

/** A ring of the last `capacity` denials (default 200). */
export function createDenialLog(capacity = 200): DenialLog {
  const ring: Denial[] = [];
  let next = 0;
  return {
    record(denial) {
      if (ring.length < capacity) ring.push(denial);
      else ring[next] = denial;
      next = (next + 1) % capacity;
    },
    list(tenantId, limit = 50) {
      const out: Denial[] = [];
      for (let i = 0; i < ring.length && out.length < limit; i++) {
        const d = ring[(next - 1 - i + ring.length) % ring.length] as Denial;
        if (tenantId === undefined || d.tenantId === tenantId) out.push(d);
      }
      return out;
    },
  };
}
