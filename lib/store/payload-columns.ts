/**
 * The tenant payloads the store keeps, each named for its column and tied to
 * the contract field or message it holds. Which of them are sensitive is not
 * said here but in the `.proto` files (`(agentmesh.v1.sensitive)`): a column
 * holding a sensitive field is sealed whole by a tenant in `sensitive` mode; a
 * column holding a message has just its sensitive fields sealed; every column
 * is sealed whole in `all` mode (see `PayloadCipher.sealPayload`).
 *
 * @example
 * const stored = await cipher.sealPayload(tenantId, payloadColumns.stepOutput, output);
 */
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import {
  GoalEventSchema,
  GoalSchema,
  StepStateSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";
import { OutcomeSchema, StepResultSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { PlanSchema, StepSchema } from "../../gen/agentmesh/v1/planner_pb.js";

/** A payload column and what of the contract it holds (nothing for a column no message describes). */
export interface PayloadColumn {
  /** `table.column`; also the field a sealed value is bound to (AES-GCM associated data). */
  readonly name: string;
  readonly holds?: { field: DescField } | { message: DescMessage };
}

export const payloadColumns = {
  goalInput: { name: "goal.input", holds: { field: GoalSchema.field.input! } },
  goalOutput: { name: "goal.output", holds: { field: GoalSchema.field.output! } },
  goalError: { name: "goal.error", holds: { field: GoalSchema.field.error! } },
  /** A `GoalEvent` as protobuf JSON. */
  eventData: { name: "goal_event.data", holds: { message: GoalEventSchema } },
  /** The whole `Plan` as protobuf JSON. */
  planSpec: { name: "plan.spec", holds: { message: PlanSchema } },
  /** Text the planner wrote; in clear but for `all`, where it is kept only in the sealed spec. */
  planRationale: { name: "plan.rationale", holds: { field: PlanSchema.field.rationale! } },
  /** A `Step` as planned. */
  stepSpec: { name: "step.spec", holds: { message: StepSchema } },
  stepOutput: { name: "step.output", holds: { field: StepStateSchema.field.output! } },
  stepError: { name: "step.error", holds: { field: StepStateSchema.field.error! } },
  attemptOutput: { name: "step_attempt.output", holds: { field: StepResultSchema.field.output! } },
  attemptError: { name: "step_attempt.error", holds: { field: StepResultSchema.field.error! } },
  /** An `Outcome` as protobuf JSON (the learning service's experience). */
  experienceOutcome: { name: "experience.outcome", holds: { message: OutcomeSchema } },
} as const satisfies Record<string, PayloadColumn>;
