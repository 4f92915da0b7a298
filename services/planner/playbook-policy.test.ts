import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { PlaybookSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import { meshPeer } from "../../lib/policy/testing.js";
import { playbookPolicy } from "./playbook-policy.js";

const playbook = create(PlaybookSchema, {
  goalKind: "ops",
  strategies: [
    {
      name: "solo",
      steps: [
        { stepId: "a", capability: "util.echo" },
        { stepId: "b", capability: "util.echo" },
        { stepId: "child", subGoal: { kind: "other" } },
      ],
    },
    { name: "careful", steps: [{ stepId: "run", capability: "shell.exec" }] },
  ],
});

describe("the PutPlaybook check", () => {
  it("asks the dispatch question once per strategy and capability, as the executor would", () => {
    const asked: PolicyInput[] = [];
    const check = playbookPolicy({
      executor: meshPeer("executor"),
      check: (input) => {
        asked.push(input);
        return { allow: true, reason: "ok", principalTrusted: false };
      },
    });
    check("acme", playbook);
    expect(asked.map((i) => [i.request.strategy, i.resource.capability])).toEqual([
      ["solo", "util.echo"],
      ["careful", "shell.exec"],
    ]);
    expect(asked[1]).toMatchObject({
      peer: { name: "executor" },
      method: { full: "agentmesh.v1.ExecutorService/DispatchStep", kind: "action" },
      resource: { tenant_id: "acme", goal_id: "", goal_kind: "ops", capability: "shell.exec" },
    });
    expect(asked[1]?.principal).toBeUndefined();
  });

  it("refuses with PERMISSION_DENIED naming the step, strategy, capability and the policy's reason", () => {
    const check = playbookPolicy({
      executor: meshPeer("executor"),
      check: (input) =>
        input.resource.capability === "shell.exec"
          ? { allow: false, reason: "tenant acme may not use shell.exec", principalTrusted: false }
          : { allow: true, reason: "ok", principalTrusted: false },
    });
    let err: unknown;
    try {
      check("acme", playbook);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MeshError);
    expect(err).toMatchObject({
      code: Code.PermissionDenied,
      message:
        'playbook ops: step "run" (strategy careful) may not use capability shell.exec: tenant acme may not use shell.exec',
      details: { stepId: "run", strategy: "careful", capability: "shell.exec" },
    });
  });
});
