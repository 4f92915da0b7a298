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
    expect(policy.authorize(job, { kind: "ops", submittedBy: "acme/key:k1" })).toMatchObject({
      allow: false,
      reason: "no shell",
    });
    expect(asked).toMatchObject({
      peer: { spiffe_id: "spiffe://agentmesh.local/ns/agentmesh/sa/executor" },
      principal: { tenant_id: "acme", subject: "key:k1", roles: [] },
      method: { full: "agentmesh.v1.ExecutorService/DispatchStep", kind: "action" },
      resource: {
        tenant_id: "acme",
        goal_id: "g-1",
        goal_kind: "ops",
        capability: "shell.exec",
        auth_scope: "",
        side_effect: "",
      },
      request: {
        step_id: "run",
        capability: "shell.exec",
        attempt: 2,
        submitted_by: "acme/key:k1",
      },
    });
    // A goal a mesh identity submitted: its SPIFFE ID, in the goal's tenant.
    const cli = "spiffe://agentmesh.local/ns/agentmesh/sa/cli";
    policy.authorize(job, { kind: "ops", submittedBy: cli });
    expect(asked?.principal).toEqual({ tenant_id: "acme", subject: cli, roles: [] });
    // The submitter's roles at submission and the capability's declared metadata.
    policy.authorize(
      job,
      { kind: "ops", submittedBy: "acme/key:k1", submitterRoles: ["goals.write", "tools:shell"] },
      { authScope: "tools:shell", sideEffect: "destructive" },
    );
    expect(asked?.principal).toEqual({
      tenant_id: "acme",
      subject: "key:k1",
      roles: ["goals.write", "tools:shell"],
    });
    expect(asked?.resource).toMatchObject({
      auth_scope: "tools:shell",
      side_effect: "destructive",
    });
    // A mesh identity's goal never carries roles.
    policy.authorize(job, { kind: "ops", submittedBy: cli, submitterRoles: ["x"] });
    expect(asked?.principal?.roles).toEqual([]);
    // A goal stored before submitters were kept: no principal at all.
    policy.authorize(job, { kind: "ops" });
    expect(asked?.principal).toBeUndefined();
    expect(asked?.request).not.toHaveProperty("submitted_by");
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
