/**
 * A goal seen as an A2A task (protocol v1.0, the JSON form of its protobuf
 * messages): the task id is the goal id, the context id the one the client
 * sent (kept as the goal's `a2a.context` label) or else the goal id; goal
 * statuses map to task states; a succeeded goal's output is the artifact
 * `output` (one data part); a failed or cancelled goal's error is the status
 * message (one text part, the error's code in its metadata). Goal events
 * become status updates carrying the event's kind and step in their metadata.
 */
import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, type Value, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type ErrorInfo, GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import type { Goal, GoalEvent } from "../../gen/agentmesh/v1/executor_pb.js";

/** The goal label that keeps the client's A2A context id. */
export const contextLabel = "a2a.context";

export type TaskState =
  | "TASK_STATE_SUBMITTED"
  | "TASK_STATE_WORKING"
  | "TASK_STATE_COMPLETED"
  | "TASK_STATE_FAILED"
  | "TASK_STATE_CANCELED";

export function taskState(status: GoalStatus): TaskState {
  switch (status) {
    case GoalStatus.PENDING:
      return "TASK_STATE_SUBMITTED";
    case GoalStatus.SUCCEEDED:
      return "TASK_STATE_COMPLETED";
    case GoalStatus.FAILED:
      return "TASK_STATE_FAILED";
    case GoalStatus.CANCELLED:
      return "TASK_STATE_CANCELED";
    default:
      return "TASK_STATE_WORKING";
  }
}

export function isTerminal(status: GoalStatus): boolean {
  return (
    status === GoalStatus.SUCCEEDED ||
    status === GoalStatus.FAILED ||
    status === GoalStatus.CANCELLED
  );
}

const iso = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : undefined);

function errorMessage(taskId: string, contextId: string, error: ErrorInfo): JsonObject {
  return {
    messageId: `${taskId}-error`,
    taskId,
    contextId,
    role: "ROLE_AGENT",
    parts: [{ text: error.message }],
    metadata: { code: error.code, retryable: error.retryable },
  };
}

function outputArtifact(output: Value): JsonObject {
  return { artifactId: "output", name: "output", parts: [{ data: toJson(ValueSchema, output) }] };
}

function status(
  taskId: string,
  contextId: string,
  goalStatus: GoalStatus,
  error: ErrorInfo | undefined,
  time: Timestamp | undefined,
): JsonObject {
  const out: JsonObject = { state: taskState(goalStatus) };
  if (error && (goalStatus === GoalStatus.FAILED || goalStatus === GoalStatus.CANCELLED)) {
    out.message = errorMessage(taskId, contextId, error);
  }
  const timestamp = iso(time);
  if (timestamp) out.timestamp = timestamp;
  return out;
}

export function contextOf(goal: Goal): string {
  return goal.labels[contextLabel] || goal.goalId;
}

/** The A2A `Task` of a goal. */
export function taskOf(goal: Goal): JsonObject {
  const contextId = contextOf(goal);
  const task: JsonObject = {
    id: goal.goalId,
    contextId,
    status: status(goal.goalId, contextId, goal.status, goal.error, goal.updatedAt),
    artifacts:
      goal.status === GoalStatus.SUCCEEDED && goal.output !== undefined
        ? [outputArtifact(goal.output)]
        : [],
    history: [],
    metadata: { goalKind: goal.kind, tenantId: goal.tenantId },
  };
  return task;
}

/**
 * The A2A stream responses of one goal event: a status update for each
 * (its kind, step and sequence in the metadata), and before the last one of a
 * succeeded goal the output artifact.
 */
export function streamResponsesOf(event: GoalEvent, contextId: string): JsonObject[] {
  const taskId = event.goalId;
  const kind = event.kind;
  const metadata: JsonObject = { event: kind.case ?? "unknown", sequence: Number(event.sequence) };
  let goalStatus: GoalStatus = GoalStatus.RUNNING;
  let error: ErrorInfo | undefined;
  const out: JsonObject[] = [];
  switch (kind.case) {
    case "submitted":
      goalStatus = GoalStatus.PENDING;
      break;
    case "planned":
      metadata.strategy = kind.value.plan?.strategy ?? "";
      break;
    case "stepDispatched":
    case "stepStarted":
    case "stepSucceeded":
    case "stepFailed":
    case "stepRetried":
      metadata.stepId = kind.value.stepId;
      break;
    case "waitingForAgents":
      metadata.capabilities = kind.value.capabilities;
      break;
    case "finished":
      goalStatus = kind.value.status;
      error = kind.value.error;
      if (goalStatus === GoalStatus.SUCCEEDED && kind.value.output !== undefined) {
        out.push({
          artifactUpdate: {
            taskId,
            contextId,
            artifact: outputArtifact(kind.value.output),
            append: false,
            lastChunk: true,
          },
        });
      }
      break;
  }
  out.push({
    statusUpdate: {
      taskId,
      contextId,
      status: status(taskId, contextId, goalStatus, error, event.time),
      metadata,
    },
  });
  return out;
}
