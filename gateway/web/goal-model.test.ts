import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type GoalEvent, GoalEventSchema, GoalSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { PlanSchema, StepSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { applyEvent, goalView, mergeSnapshot, stepCount } from "./goal-model.js";

const goalId = "g1";
/** A diamond whose `fetch` step fails once and is retried. */
function history(): GoalEvent[] {
  const kinds: GoalEvent["kind"][] = [
    { case: "submitted", value: { kind: "diamond" } as never },
    {
      case: "planned",
      value: {
        plan: create(PlanSchema, {
          steps: ["plan", "fetch"].map((stepId, i) =>
            create(StepSchema, {
              stepId,
              capability: "util.sleep",
              dependsOn: i ? ["plan"] : [],
            }),
          ),
        }),
      } as never,
    },
    { case: "stepDispatched", value: { stepId: "plan", attempt: 1 } as never },
    { case: "stepStarted", value: { stepId: "plan", attempt: 1, agentId: "a1" } as never },
    { case: "stepSucceeded", value: { stepId: "plan", attempt: 1, agentIds: ["a1"] } as never },
    { case: "stepDispatched", value: { stepId: "fetch", attempt: 1 } as never },
    { case: "stepStarted", value: { stepId: "fetch", attempt: 1, agentId: "a1" } as never },
    {
      case: "stepFailed",
      value: {
        stepId: "fetch",
        attempt: 1,
        willRetry: true,
        error: { code: "TIMEOUT", message: "slow" },
      } as never,
    },
    { case: "stepRetried", value: { stepId: "fetch", nextAttempt: 2 } as never },
    { case: "stepDispatched", value: { stepId: "fetch", attempt: 2 } as never },
    { case: "stepStarted", value: { stepId: "fetch", attempt: 2, agentId: "a2" } as never },
    { case: "stepSucceeded", value: { stepId: "fetch", attempt: 2, agentIds: ["a2"] } as never },
    { case: "finished", value: { status: GoalStatus.SUCCEEDED } as never },
  ];
  return kinds.map((kind, i) =>
    create(GoalEventSchema, { goalId, sequence: BigInt(i + 1), kind } as never),
  );
}

const finalSnapshot = () =>
  create(GoalSchema, {
    goalId,
    status: GoalStatus.SUCCEEDED,
    steps: [
      { stepId: "plan", status: StepStatus.SUCCEEDED, attempts: 1, dependsOn: [] },
      { stepId: "fetch", status: StepStatus.SUCCEEDED, attempts: 2, dependsOn: ["plan"] },
    ],
  } as never);

const statuses = (v: ReturnType<typeof goalView>) =>
  [v.goal.status, ...v.goal.steps.map((s) => `${s.stepId}:${s.status}:${s.attempts}`)].join(" ");

describe("goal model", () => {
  it("a replayed history on a finished snapshot never takes the plan backwards", () => {
    const view = goalView(finalSnapshot());
    const seen = [statuses(view)];
    for (const e of history()) {
      applyEvent(view, e);
      seen.push(statuses(view));
    }
    expect(new Set(seen).size).toBe(1);
    expect(view.events).toHaveLength(13);
    expect(stepCount(view)).toBe("2/2");
  });

  it("events in any order, repeated, with snapshots between: each status only moves forward and ends as in order", () => {
    const inOrder = goalView(create(GoalSchema, { goalId }));
    for (const e of history()) applyEvent(inOrder, e);
    expect(statuses(inOrder)).toBe(statuses(goalView(finalSnapshot())));
    expect(
      inOrder.attempts.map((a) => `${a.stepId}#${a.attempt}:${a.outcome}:${a.agentId}`),
    ).toEqual(["fetch#1:retrying:a1", "fetch#2:succeeded:a2", "plan#1:succeeded:a1"]);
    fc.assert(
      fc.property(
        fc.shuffledSubarray(history(), { minLength: 13 }),
        fc.array(fc.nat(12), { maxLength: 6 }),
        fc.boolean(),
        (events, repeats, snapshotFirst) => {
          const view = goalView(create(GoalSchema, { goalId }));
          if (snapshotFirst) mergeSnapshot(view, finalSnapshot());
          let previous = statuses(view);
          const all = [...events, ...repeats.map((i) => history()[i] as GoalEvent)];
          for (const e of all) {
            applyEvent(view, e);
            const now = statuses(view);
            // Goal status numbers only grow (terminal stays), steps' attempts only grow.
            expect(Number(now.split(" ")[0])).toBeGreaterThanOrEqual(
              Number(previous.split(" ")[0]),
            );
            previous = now;
          }
          mergeSnapshot(view, finalSnapshot());
          expect(statuses(view)).toBe(statuses(inOrder));
          expect(view.events.map((e) => Number(e.sequence))).toEqual(
            Array.from({ length: 13 }, (_, i) => i + 1),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a list row is not counted until its steps are known", () => {
    const row = goalView(create(GoalSchema, { goalId, status: GoalStatus.SUCCEEDED }));
    expect(stepCount(row)).toBe("…");
    mergeSnapshot(row, finalSnapshot());
    expect(stepCount(row)).toBe("2/2");
    // A later, older list row does not take it back.
    mergeSnapshot(row, create(GoalSchema, { goalId, status: GoalStatus.RUNNING }));
    expect(row.goal.status).toBe(GoalStatus.SUCCEEDED);
  });
});
