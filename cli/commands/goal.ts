import { create, type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type Goal, GoalSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import { applyGoalEvent } from "../../sdk/client/goal-events.js";
import { outputJson } from "../../sdk/client/goal-result.js";
import type { MeshClient } from "../../sdk/client/index.js";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh goal <submit|ls|get|watch|cancel> [options]   (AGENTMESH_URL, AGENTMESH_API_KEY)

  submit --kind K [--input '{...}'] [--key IDEMPOTENCY_KEY] [--priority N] [--watch]
                       submit a goal; --watch shows step progress live until it ends,
                       then the output as JSON (exit 0) or the error (exit 1)
  ls [--status running|succeeded|...] [--kind K] [--limit N]
  get GOAL_ID [--json]  the goal with each step's state
  watch GOAL_ID         live step progress, then the output or the error
  cancel GOAL_ID [--reason TEXT]`;

/** `agentmesh goal`: submit, list, inspect, watch and cancel goals through the gateway. */
export const goal: Command = {
  name: "goal",
  summary: "submit, list, watch and cancel goals through the gateway",
  usage,
  run: (args) => reporting(() => dispatch(args)),
};

async function dispatch(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "submit":
      return submit(rest);
    case "ls":
      return list(rest);
    case "get":
      return get(rest);
    case "watch": {
      const id = rest[0];
      if (!id) throw new UsageError("watch needs a goal id");
      return watch(await meshFromEnv(), id);
    }
    case "cancel":
      return cancel(rest);
    default:
      throw new UsageError(
        sub ? `unknown sub-command ${JSON.stringify(sub)}` : "missing sub-command",
      );
  }
}

async function submit(args: string[]): Promise<number> {
  const { values } = flags(args, {
    kind: { type: "string" },
    input: { type: "string" },
    key: { type: "string" },
    priority: { type: "string" },
    watch: { type: "boolean" },
  });
  if (!values.kind) throw new UsageError("--kind is required");
  let input: JsonObject = {};
  if (values.input) {
    try {
      input = JSON.parse(values.input) as JsonObject;
    } catch (err) {
      throw new UsageError(`--input is not JSON: ${(err as Error).message}`);
    }
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      throw new UsageError("--input must be a JSON object");
    }
  }
  const mesh = await meshFromEnv();
  const res = await mesh.executor.submitGoal({
    kind: values.kind,
    input,
    idempotencyKey: values.key ?? "",
    priority: values.priority ? Number.parseInt(values.priority, 10) : 0,
  });
  const g = res.goal as Goal;
  console.log(`${res.created ? "submitted" : "already submitted"} goal ${g.goalId} (${g.kind})`);
  return values.watch ? watch(mesh, g.goalId) : 0;
}

const stepMark: Record<number, string> = {
  [StepStatus.PENDING]: "·",
  [StepStatus.DISPATCHED]: "→",
  [StepStatus.RUNNING]: "▶",
  [StepStatus.SUCCEEDED]: "✔",
  [StepStatus.FAILED]: "✖",
  [StepStatus.CANCELLED]: "⊘",
  [StepStatus.RETRY_WAIT]: "↻",
};

/** Follows WatchGoal, keeping a task list of steps; redraws in place on a terminal. */
async function watch(mesh: MeshClient, goalId: string): Promise<number> {
  const goal = create(GoalSchema, { goalId });
  const tty = process.stdout.isTTY === true;
  let drawn = 0;
  const draw = () => {
    if (drawn) process.stdout.write(`\x1b[${drawn}A`);
    const done = goal.steps.filter((s) => s.status === StepStatus.SUCCEEDED).length;
    const width = 20;
    const filled = goal.steps.length ? Math.round((done / goal.steps.length) * width) : 0;
    const lines = [
      `[${"█".repeat(filled)}${"░".repeat(width - filled)}] ${done}/${goal.steps.length} steps`,
      ...goal.steps.map(
        (s) =>
          `  ${stepMark[s.status] ?? "?"} ${s.stepId.padEnd(16)} ${s.capability}${s.attempts > 1 ? ` (attempt ${s.attempts})` : ""}`,
      ),
    ];
    for (const l of lines) process.stdout.write(`\x1b[2K${l}\n`);
    drawn = lines.length;
  };
  for await (const { event } of mesh.executor.watchGoal({ goalId })) {
    if (!event) continue;
    const changed = applyGoalEvent(goal, event);
    if (tty) draw();
    else if (changed) {
      console.log(
        `${stepMark[changed.status] ?? "?"} ${changed.stepId} ${lower(StepStatus, changed.status)}`,
      );
    }
  }
  // The end: the output as plain JSON, or the error.
  console.log(`goal ${goalId} ${lower(GoalStatus, goal.status)}`);
  if (goal.status === GoalStatus.SUCCEEDED) {
    console.log(JSON.stringify(outputJson(goal.output) ?? null, null, 2));
    return 0;
  }
  if (goal.error) console.log(`error: ${goal.error.code}: ${goal.error.message}`);
  return 1;
}

const lower = (names: Record<number, string>, value: number) =>
  (names[value] ?? "unknown").toLowerCase();

async function list(args: string[]): Promise<number> {
  const { values } = flags(args, {
    status: { type: "string", multiple: true },
    kind: { type: "string" },
    limit: { type: "string" },
  });
  const statuses = (values.status ?? []).map((s) => {
    const v = GoalStatus[s.toUpperCase() as keyof typeof GoalStatus];
    if (typeof v !== "number") throw new UsageError(`unknown status ${JSON.stringify(s)}`);
    return v;
  });
  const { goals } = await (await meshFromEnv()).executor.listGoals({
    statuses,
    kind: values.kind ?? "",
    pageSize: values.limit ? Number.parseInt(values.limit, 10) : 20,
  });
  table(
    ["GOAL", "KIND", "STATUS", "CREATED"],
    goals.map((g) => [
      g.goalId,
      g.kind,
      lower(GoalStatus, g.status),
      g.createdAt ? timestampDate(g.createdAt).toISOString() : "",
    ]),
  );
  return 0;
}

async function get(args: string[]): Promise<number> {
  const { values, positionals } = flags(args, { json: { type: "boolean" } });
  const id = positionals[0];
  if (!id) throw new UsageError("get needs a goal id");
  const { goal: g } = await (await meshFromEnv()).executor.getGoal({ goalId: id });
  if (!g) return 1;
  if (values.json) {
    console.log(JSON.stringify(toJson(GoalSchema, g), null, 2));
    return 0;
  }
  console.log(`goal ${g.goalId} (${g.kind}) ${lower(GoalStatus, g.status)}`);
  // The goal's trace (its child goals and agents' spans share it): look it up in the trace backend.
  if (g.traceId) console.log(`trace ${g.traceId}`);
  table(
    ["STEP", "CAPABILITY", "STATUS", "ATTEMPTS", "AFTER"],
    g.steps.map((s) => [
      s.stepId,
      s.capability,
      lower(StepStatus, s.status),
      String(s.attempts),
      s.dependsOn.join(","),
    ]),
  );
  if (g.output) console.log(`output: ${JSON.stringify(outputJson(g.output))}`);
  if (g.error) console.log(`error: ${g.error.code}: ${g.error.message}`);
  return 0;
}

async function cancel(args: string[]): Promise<number> {
  const { values, positionals } = flags(args, { reason: { type: "string" } });
  const id = positionals[0];
  if (!id) throw new UsageError("cancel needs a goal id");
  const { goal: g } = await (await meshFromEnv()).executor.cancelGoal({
    goalId: id,
    reason: values.reason ?? "",
  });
  console.log(`goal ${id} ${lower(GoalStatus, g?.status ?? 0)}`);
  return 0;
}
