import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StepResultSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { spiffeId } from "../../lib/identity/spiffe.js";
import { createPolicyAuthorizer } from "../../lib/policy/authorizer.js";
import { openPolicyEngine, type PolicyEngine } from "../../lib/policy/engine.js";
import { committedBundlePath } from "../../lib/policy/testing.js";
import type { GoalState } from "./domain/goal-state.js";
import { policyResultAuthority, type ResultAuthority, resultRefusal } from "./result-authority.js";

describe("results bound to identity", () => {
  let engine: PolicyEngine;
  let mayServe: ResultAuthority;
  beforeAll(async () => {
    engine = await openPolicyEngine({ path: committedBundlePath, watch: false });
    mayServe = policyResultAuthority(createPolicyAuthorizer(engine), (name) => spiffeId({ name }));
  });
  afterAll(() => engine?.close());

  it("follows the compiled policy's capability grants", async () => {
    expect(await mayServe("agent-text", "text.summarize")).toBe(true);
    expect(await mayServe("agent-text", "shell.exec")).toBe(false);
    expect(await mayServe("agent-mcp-github", "mcp.github.search")).toBe(true);
    expect(await mayServe("agent-mcp-github", "mcp.gitlab.search")).toBe(false);
    expect(await mayServe("executor", "text.summarize")).toBe(false);
    expect(await mayServe("Not An Identity", "text.summarize")).toBe(false);
  });

  it("refuses a publisher without the step's capability, anonymous ones and sub-goal steps", async () => {
    const state = {
      steps: {
        run: { spec: { stepId: "run", capability: "shell.exec" } },
        sum: { spec: { stepId: "sum", capability: "text.summarize" } },
        child: { spec: { stepId: "child", capability: "" } },
      },
    } as unknown as GoalState;
    const on = (stepId: string) => create(StepResultSchema, { stepId, goalId: "g", tenantId: "t" });
    expect(await resultRefusal(state, on("sum"), "agent-text", mayServe)).toBeUndefined();
    expect(await resultRefusal(state, on("run"), "agent-text", mayServe)).toBe(
      "agent-text may not serve shell.exec (step run)",
    );
    expect(await resultRefusal(state, on("run"), "agent-shell", mayServe)).toBeUndefined();
    expect(await resultRefusal(state, on("sum"), undefined, mayServe)).toMatch(/unnamed publisher/);
    expect(await resultRefusal(state, on("child"), "agent-text", mayServe)).toMatch(/sub-goal/);
    expect(await resultRefusal(state, on("gone"), "agent-text", mayServe)).toBeUndefined();
  });
});
