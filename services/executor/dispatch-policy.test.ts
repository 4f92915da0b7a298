import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { StepJobSchema, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import { meshPeer } from "../../lib/policy/testing.js";
import { deniedResult, dispatchPolicy } from "./dispatch-policy.js";

const job = create(StepJobSchema, {
  attemptId: "att-1",
  goalId: "g-1",
  tenantId: "acme",
  stepId: "run",
  capability: "shell.exec",
  attempt: 2,
});

describe("policy at dispatch", () => {
  it("asks the dispatch action for the job's tenant, goal, kind and capability", () => {
    let asked: PolicyInput | undefined;
    const policy = dispatchPolicy({
      executor: meshPeer("executor"),
      check: (input) => {
        asked = input;
        return { allow: false, reason: "no shell", principalTrusted: false };
      },
    });
    expect(policy.authorize(job, "ops")).toMatchObject({ allow: false, reason: "no shell" });
    expect(asked).toMatchObject({
      peer: { spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/executor" },
      method: { full: "agentmesh.v1.ExecutorService/DispatchStep", kind: "action" },
      resource: { tenant_id: "acme", goal_id: "g-1", goal_kind: "ops", capability: "shell.exec" },
      request: { step_id: "run", capability: "shell.exec", attempt: 2 },
    });
    expect(policy.denialEvent(job, "no shell")).toEqual({
      actor: "spiffe://agentmesh.local/ns/agentmesh/sa/executor",
      action: "policy.denied",
      resource: "/agentmesh.v1.ExecutorService/DispatchStep",
      tenantId: "acme",
      details: {
        reason: "no shell",
        goalId: "g-1",
        stepId: "run",
        capability: "shell.exec",
        attempt: 2,
      },
    });
  });

  it("fails a denied attempt at once: PERMISSION_DENIED, not retryable, with the reason", () => {
    const r = deniedResult(job, "no shell");
    expect(r).toMatchObject({
      attemptId: "att-1",
      goalId: "g-1",
      tenantId: "acme",
      stepId: "run",
      agentId: "",
      status: StepResultStatus.FAILED,
      error: {
        code: "PERMISSION_DENIED",
        message: 'step "run" may not be dispatched to shell.exec: no shell',
        retryable: false,
      },
    });
  });
});
