import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { GoalEventSchema } from "../gen/agentmesh/v1/executor_pb.js";
import { finishedEvent } from "./finished-event.js";

const event = (kind: Parameters<typeof create<typeof GoalEventSchema>>[1]) =>
  toBinary(
    GoalEventSchema,
    create(GoalEventSchema, {
      goalId: "g1",
      tenantId: "t1",
      sequence: 3n,
      time: timestampFromMs(1_700_000_000_000),
      ...kind,
    }),
  );

describe("finishedEvent", () => {
  it("decodes a finished event, status and output", () => {
    const bytes = event({
      kind: {
        case: "finished",
        value: {
          status: GoalStatus.SUCCEEDED,
          output: { kind: { case: "stringValue", value: "m1" } },
        },
      },
    });
    const f = finishedEvent(bytes);
    expect(f?.goalId).toBe("g1");
    expect(f?.finished.status).toBe(GoalStatus.SUCCEEDED);
    expect(f?.finished.output?.kind).toEqual({ case: "stringValue", value: "m1" });
  });

  it("passes over every other kind, whatever its nested fields hold", () => {
    const others = [
      event({ kind: { case: "submitted", value: {} } }),
      event({
        kind: {
          case: "planned",
          value: { plan: { steps: [{ stepId: "s", capability: "util.echo" }] } },
        },
      }),
      event({
        kind: {
          case: "stepDispatched",
          value: { stepId: "s", attempt: 1, attemptId: "a", capability: "util.echo" },
        },
      }),
      event({ kind: { case: "stepSucceeded", value: { stepId: "s" } } }),
      event({ kind: { case: "waitingForAgents", value: { capabilities: ["util.echo"] } } }),
      event({}),
    ];
    for (const bytes of others) expect(finishedEvent(bytes)).toBeUndefined();
  });
});
