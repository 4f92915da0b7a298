/**
 * Message ids (`Nats-Msg-Id`) of everything the bus publishes. They make a
 * republish after a timeout or a crash harmless: the stream drops a repeated id
 * within its duplicate window.
 */
import type { GoalEvent } from "../../gen/agentmesh/v1/executor_pb.js";
import {
  type Outcome,
  type StepJob,
  type StepResult,
  StepResultStatus,
  type TrainingJob,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";

export function jobMsgId(job: StepJob): string {
  if (!job.attemptId) throw new MeshError(Code.InvalidArgument, "step job needs an attempt_id");
  return job.attemptId;
}

/** One result per attempt and status: a redelivered attempt reporting again is a duplicate. */
export function resultMsgId(result: StepResult): string {
  if (!result.attemptId)
    throw new MeshError(Code.InvalidArgument, "step result needs an attempt_id");
  return `${result.attemptId}.${StepResultStatus[result.status] ?? result.status}`;
}

export function eventMsgId(event: GoalEvent): string {
  return `${event.goalId}.${event.sequence}`;
}

export function outcomeMsgId(outcome: Outcome): string {
  return `outcome.${outcome.goalId}`;
}

export function trainingMsgId(job: TrainingJob): string {
  if (!job.runId) throw new MeshError(Code.InvalidArgument, "training job needs a run_id");
  return `training.${job.runId}`;
}

/** One dead letter per stored message, whoever moves it (advisory listener or agent). */
export function deadLetterMsgId(stream: string, seq: number, subject: string): string {
  return seq > 0 ? `dlq.${stream}.${seq}` : `dlq.${subject}`;
}
