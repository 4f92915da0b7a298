import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { GoalEventSchema, GoalSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import {
  redactedText,
  redactSensitive,
  sensitiveFields,
  sensitiveJsonPaths,
} from "./sensitive-fields.js";

describe("sensitive fields from the contract", () => {
  it("lists the fields the protos mark (agentmesh.v1.sensitive)", () => {
    expect(sensitiveFields(GoalSchema).sort()).toEqual([
      "agentmesh.v1.Goal.input",
      "agentmesh.v1.Goal.output",
      "agentmesh.v1.StepState.output",
    ]);
    expect(sensitiveFields(GoalEventSchema)).toEqual(
      expect.arrayContaining([
        "agentmesh.v1.Step.input",
        "agentmesh.v1.SubGoal.input",
        "agentmesh.v1.StepSucceeded.output",
        "agentmesh.v1.GoalFinished.output",
      ]),
    );
  });

  it("redacts set sensitive fields in nested messages, lists and oneofs, and nothing else", () => {
    const goal = create(GoalSchema, {
      goalId: "g1",
      input: { ssn: "123" },
      output: { kind: { case: "stringValue", value: "secret" } },
      steps: [
        { stepId: "a", output: { kind: { case: "numberValue", value: 1 } } },
        { stepId: "b" },
      ],
    });
    expect(redactSensitive(GoalSchema, goal)).toEqual(["input", "output", "steps[0].output"]);
    expect(goal.input).toEqual({ redacted: redactedText });
    expect(goal.output?.kind).toEqual({ case: "stringValue", value: redactedText });
    expect(goal.steps[1]?.output).toBeUndefined();
    expect(goal.goalId).toBe("g1");
    const event = create(GoalEventSchema, {
      kind: {
        case: "stepSucceeded",
        value: { stepId: "a", output: { kind: { case: "boolValue", value: true } } },
      },
    });
    expect(redactSensitive(GoalEventSchema, event)).toEqual(["stepSucceeded.output"]);
  });

  it("finds the sensitive fields in protobuf JSON: oneofs, lists, maps, proto names; unknown keys are not sensitive", () => {
    const planned = {
      planned: {
        plan: {
          steps: [
            { stepId: "a", input: { q: 1 } },
            { stepId: "b", sub_goal: { kind: "k", input: {} } },
          ],
        },
      },
      stepSucceeded: { stepId: "a" },
      whatever: { input: 1 },
    };
    expect(sensitiveJsonPaths(GoalEventSchema, planned)).toEqual([
      ["planned", "plan", "steps", 0, "input"],
      ["planned", "plan", "steps", 1, "sub_goal", "input"],
    ]);
    const outcome = { context: { goalKind: "k", text: "t", features: { a: "b" } } };
    expect(sensitiveJsonPaths(OutcomeSchema, outcome)).toEqual([
      ["context", "text"],
      ["context", "features"],
    ]);
    expect(sensitiveJsonPaths(OutcomeSchema, "not an object")).toEqual([]);
  });
});
