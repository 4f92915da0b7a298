/**
 * The bench's watch on goal events wants one of the five a one-step goal
 * publishes: `finished`. An event's kind is a oneof (`GoalEvent` fields
 * 10–18), so reading its top-level tags tells a `finished` event from the
 * others without decoding them (the four others' full decode, plan and steps
 * included, was 6 % of the bench process's busy time).
 *
 * @example
 * const f = finishedEvent(msg.data); // undefined unless the event is `finished`
 * if (f) settle(f.goalId, f.finished.status, f.finished.output);
 */
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { GoalEventSchema, type GoalFinished } from "../gen/agentmesh/v1/executor_pb.js";

const finishedField = GoalEventSchema.field.finished!.number;

/** The goal and its `finished` payload when `bytes` is a `finished` goal event; else undefined. */
export function finishedEvent(
  bytes: Uint8Array,
): { goalId: string; finished: GoalFinished } | undefined {
  if (!hasTopLevelField(bytes, finishedField)) return undefined;
  // Decoded whole: the last kind on the wire wins, as in any decode.
  const event = fromBinary(GoalEventSchema, bytes);
  return event.kind.case === "finished"
    ? { goalId: event.goalId, finished: event.kind.value }
    : undefined;
}

/** Whether the message's top level carries field `no` (its nested messages are skipped). */
function hasTopLevelField(bytes: Uint8Array, no: number): boolean {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === no) return true;
    reader.skip(wireType, fieldNo);
  }
  return false;
}
