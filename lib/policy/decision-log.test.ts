import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createDecisionLog, type DecisionLogEntry } from "./decision-log.js";
import type { EngineDecision } from "./engine.js";
import type { PolicyInput } from "./input.js";

const input: PolicyInput = {
  peer: {
    spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/gateway",
    trust_domain: "agentmesh.local",
    namespace: "agentmesh",
    name: "gateway",
  },
  principal: { tenant_id: "acme", subject: "rita", roles: ["goals.read"] },
  method: {
    service: "agentmesh.v1.ExecutorService",
    name: "SubmitGoal",
    full: "agentmesh.v1.ExecutorService/SubmitGoal",
    kind: "unary",
  },
  resource: { tenant_id: "acme", goal_kind: "summarize" },
  request: { tenant_id: "acme", kind: "summarize" },
  time: { unix_ms: Date.UTC(2026, 0, 2, 3, 4, 5) },
};
const deny: EngineDecision = {
  allow: false,
  reason:
    "principal acme/rita (roles: goals.read) may not call agentmesh.v1.ExecutorService/SubmitGoal",
  principalTrusted: true,
  revision: "0123456789abcdef",
  cached: false,
};
const allow: EngineDecision = { ...deny, allow: true, reason: "ok", cached: true };

describe("decision log", () => {
  it("writes every denial and a sample of allows, one OPA-shaped JSON line each, secrets redacted", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentmesh-decisions-"));
    try {
      const path = join(dir, "nested", "decisions.log");
      let r = 0;
      const sequence = [0.9, 0.1, 0.7];
      const log = createDecisionLog({
        destination: path,
        sampleAllows: 0.5,
        labels: { service: "executor" },
        random: () => sequence[r++ % sequence.length]!,
      });
      const withSecret = {
        ...input,
        principal: { ...input.principal!, token: "hunter2" },
        resource: { ...input.resource, secret: "s3cret" },
      } as PolicyInput;
      expect(log.record(withSecret, deny, 12_345)).toBe(true);
      expect(log.record(input, allow)).toBe(false); // 0.9 ≥ 0.5: not sampled
      expect(log.record(input, allow)).toBe(true); // 0.1 < 0.5: sampled
      await log.close();
      const text = await readFile(path, "utf8");
      expect(text).not.toContain("hunter2");
      expect(text).not.toContain("s3cret");
      const lines = text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as DecisionLogEntry);
      expect(lines).toHaveLength(2);
      const [first, second] = lines as [DecisionLogEntry, DecisionLogEntry];
      expect(Object.keys(first).sort()).toEqual(
        [
          "bundles",
          "cached",
          "decision_id",
          "input",
          "labels",
          "metrics",
          "path",
          "result",
          "timestamp",
        ].sort(),
      );
      expect(first).toMatchObject({
        path: "agentmesh/authz/decision",
        result: { allow: false, reason: deny.reason, principal_trusted: true },
        bundles: { agentmesh: { revision: "0123456789abcdef" } },
        timestamp: "2026-01-02T03:04:05.000Z",
        metrics: { timer_rego_query_eval_ns: 12_345 },
        labels: { service: "executor" },
        cached: false,
      });
      expect(first.input.principal).toMatchObject({ tenant_id: "acme", token: "[REDACTED]" });
      expect((first.input.resource as Record<string, unknown>).secret).toBe("[REDACTED]");
      expect(first.decision_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(second.decision_id).not.toBe(first.decision_id);
      expect(second.result.allow).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says which component and replica decided, and why an evaluation failed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentmesh-decisions-"));
    try {
      const path = join(dir, "decisions.log");
      const log = createDecisionLog({ destination: path, labels: { cluster: "eu-1" } });
      const failed: EngineDecision = {
        ...deny,
        reason: "policy evaluation failed",
        principalTrusted: false,
        error: "policies/authz/frozen.rego:3:1: var assignment conflict",
      };
      log.record(input, failed, 0, { component: "executor", instance: "executor-a-1" });
      await log.close();
      const entry = JSON.parse(await readFile(path, "utf8")) as DecisionLogEntry;
      expect(entry.labels).toEqual({
        cluster: "eu-1",
        component: "executor",
        instance: "executor-a-1",
      });
      expect(entry.error).toEqual({
        code: "evaluation_error",
        message: "policies/authz/frozen.rego:3:1: var assignment conflict",
      });
      expect(entry.result).toEqual({
        allow: false,
        reason: "policy evaluation failed",
        principal_trusted: false,
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("samples the denials of a question that refuses nothing like allows", async () => {
    const dir = await mkdtemp(join(tmpdir(), "agentmesh-decisions-"));
    try {
      const path = join(dir, "decisions.log");
      let r = 0;
      const sequence = [0.9, 0.1];
      const log = createDecisionLog({
        destination: path,
        sampleAllows: 0.5,
        random: () => sequence[r++ % sequence.length]!,
      });
      const question = { sampleDenials: true };
      expect(log.record(input, deny, 0, undefined, question)).toBe(false); // 0.9: not sampled
      expect(log.record(input, deny, 0, undefined, question)).toBe(true); // 0.1: sampled
      expect(log.record(input, deny)).toBe(true); // a call's denial: always
      await log.close();
      const lines = (await readFile(path, "utf8")).trim().split("\n");
      expect(lines).toHaveLength(2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("rejects a sample rate outside 0..1", () => {
    expect(() => createDecisionLog({ sampleAllows: 2 })).toThrow(RangeError);
    expect(() => createDecisionLog({ sampleAllows: Number.NaN })).toThrow(RangeError);
  });
});
