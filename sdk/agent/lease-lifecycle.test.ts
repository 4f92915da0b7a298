import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Code } from "../../lib/errors/mesh-error.js";
import {
  heartbeatIntervalMs,
  initialLease,
  type LeaseState,
  leaseStatus,
  nextLeaseCall,
  onLeaseEvent,
  retryDelayMs,
} from "./lease-lifecycle.js";

const ttl = 15_000;
const interval = heartbeatIntervalMs(ttl); // 5 s

function registered(at = 0): LeaseState {
  return onLeaseEvent(initialLease({ leaseTtlMs: ttl, at }), {
    type: "registered",
    agentId: "a1",
    leaseTtlMs: ttl,
    sentAt: at,
    at,
  });
}

describe("lease lifecycle", () => {
  it("registers at once, then heartbeats every third of the lease", () => {
    const s0 = initialLease({ leaseTtlMs: ttl, at: 1_000 });
    expect(nextLeaseCall(s0, 0.5)).toEqual({ call: "register", at: 1_000 });
    expect(leaseStatus(s0, 1_000)).toMatchObject({ phase: "registering", ready: false });
    const s1 = registered(1_000);
    expect(leaseStatus(s1, 1_001)).toMatchObject({ phase: "live", ready: true, agentId: "a1" });
    expect(nextLeaseCall(s1, 0.5)).toEqual({ call: "heartbeat", at: 1_000 + interval });
  });

  it("re-registers at once when a heartbeat hears the lease expired or the agent unknown", () => {
    for (const code of [Code.FailedPrecondition, Code.NotFound]) {
      const s = onLeaseEvent(registered(), {
        type: "failed",
        call: "heartbeat",
        code,
        message: "agent a1 is expired; register again",
        at: 20_000,
      });
      expect(leaseStatus(s, 20_000)).toMatchObject({ phase: "registering", ready: false });
      expect(nextLeaseCall(s, 0.9)).toEqual({ call: "register", at: 20_000 });
    }
  });

  it("retries a failed heartbeat with capped backoff and registers once the lease lapsed", () => {
    let s = registered(0);
    let t = interval;
    for (let i = 0; i < 10; i++) {
      s = onLeaseEvent(s, {
        type: "failed",
        call: "heartbeat",
        code: Code.Unavailable,
        message: "registry down",
        at: t,
      });
      const next = nextLeaseCall(s, 1)!;
      expect(next.at - t).toBeLessThanOrEqual(interval / 2);
      // Before the lease ends the agent renews; afterwards it registers (the registry expired it).
      expect(next.call).toBe(next.at < ttl ? "heartbeat" : "register");
      t = next.at;
    }
    expect(leaseStatus(s, t)).toMatchObject({ phase: "live", ready: false, failures: 10 });
  });

  it("a draining agent heartbeats but never registers again", () => {
    let s = onLeaseEvent(registered(0), { type: "drain", at: 100 });
    expect(nextLeaseCall(s, 0)).toEqual({ call: "heartbeat", at: interval });
    expect(leaseStatus(s, 100).ready).toBe(false);
    s = onLeaseEvent(s, {
      type: "failed",
      call: "heartbeat",
      code: Code.FailedPrecondition,
      message: "expired",
      at: 200,
    });
    expect(nextLeaseCall(s, 0)).toBeUndefined();
    expect(nextLeaseCall(onLeaseEvent(registered(), { type: "stop", at: 1 }), 0)).toBeUndefined();
  });

  it("backoff doubles from 250 ms, jittered within its upper half, capped", () => {
    expect(retryDelayMs(0, 5_000, 0.3)).toBe(0);
    expect(retryDelayMs(1, 5_000, 0)).toBe(125);
    expect(retryDelayMs(1, 5_000, 1)).toBe(250);
    expect(retryDelayMs(3, 5_000, 1)).toBe(1_000);
    expect(retryDelayMs(30, 5_000, 1)).toBe(5_000);
    expect(retryDelayMs(30, 5_000, 0)).toBe(2_500);
  });

  it("after any outage the agent is live again within one heartbeat interval of recovery", () => {
    // A registry that is down on [downFrom, upAt) and forgets the lease of any agent whose
    // last renewal is older than the lease; calls take `latency` ms.
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60_000 }),
        fc.integer({ min: 1, max: 120_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.array(fc.double({ min: 0, max: 0.999, noNaN: true }), { minLength: 1, maxLength: 20 }),
        (downFrom, outage, latency, jitters) => {
          const upAt = downFrom + outage;
          let registryLeaseUntil = 0;
          let s = initialLease({ leaseTtlMs: ttl, at: 0 });
          let readyAfterRecovery: number | undefined;
          for (let i = 0; i < 400; i++) {
            const next = nextLeaseCall(s, jitters[i % jitters.length]!);
            if (next === undefined) throw new Error("the agent gave up");
            const sentAt = next.at;
            // Still holding its lease when the registry returns: nothing to recover.
            if (sentAt >= upAt && leaseStatus(s, upAt).ready) {
              readyAfterRecovery = upAt;
              break;
            }
            const at = sentAt + latency;
            const up = sentAt < downFrom || sentAt >= upAt;
            if (!up) {
              s = onLeaseEvent(s, {
                type: "failed",
                call: next.call,
                code: Code.Unavailable,
                message: "down",
                at,
              });
            } else if (next.call === "register") {
              registryLeaseUntil = sentAt + ttl;
              s = onLeaseEvent(s, {
                type: "registered",
                agentId: "a1",
                leaseTtlMs: ttl,
                sentAt,
                at,
              });
            } else if (sentAt >= registryLeaseUntil) {
              s = onLeaseEvent(s, {
                type: "failed",
                call: "heartbeat",
                code: Code.FailedPrecondition,
                message: "expired",
                at,
              });
            } else {
              registryLeaseUntil = sentAt + ttl;
              s = onLeaseEvent(s, { type: "renewed", sentAt, at });
            }
            // Ready means the registry holds the lease.
            if (leaseStatus(s, at).ready) expect(at).toBeLessThan(registryLeaseUntil + latency);
            if (at >= upAt && leaseStatus(s, at).ready) {
              readyAfterRecovery = at;
              break;
            }
          }
          expect(readyAfterRecovery).toBeDefined();
          // Within half an interval (plus the calls' own latency) of the registry coming back,
          // which leaves the other half for a gRPC channel to redial.
          expect(readyAfterRecovery! - upAt).toBeLessThanOrEqual(interval / 2 + 2 * latency);
        },
      ),
      { numRuns: 300 },
    );
  });
});
