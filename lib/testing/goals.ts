/**
 * Helpers for end-to-end goal tests: watch a goal to its end, and summarize
 * its events.
 */
import type { ExecutorService, GoalEvent } from "../../gen/agentmesh/v1/executor_pb.js";
import type { Client } from "../rpc/client.js";

/** Every event of a goal until GoalFinished (WatchGoal), or throws after `timeoutMs`. */
export async function watchToEnd(
  executor: Client<typeof ExecutorService>,
  tenantId: string,
  goalId: string,
  timeoutMs = 20_000,
): Promise<GoalEvent[]> {
  const signal = AbortSignal.timeout(timeoutMs);
  const events: GoalEvent[] = [];
  for await (const res of executor.watchGoal({ tenantId, goalId }, { signal })) {
    if (res.event) events.push(res.event);
  }
  return events;
}

/** `case` of each event, e.g. `["submitted", "planned", "stepDispatched", ...]`. */
export function kinds(events: GoalEvent[]): string[] {
  return events.map((e) => e.kind.case ?? "?");
}

type EventKind = GoalEvent["kind"];
type CaseName = NonNullable<EventKind["case"]>;
type ValueOf<K extends CaseName> = Extract<EventKind, { case: K }>["value"];

/** Events of one kind. */
export function eventsOf<K extends CaseName>(events: GoalEvent[], kind: K): ValueOf<K>[] {
  const out: ValueOf<K>[] = [];
  for (const e of events) if (e.kind.case === kind) out.push(e.kind.value as ValueOf<K>);
  return out;
}
