import { type JsonObject, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type Goal, GoalSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import type { MeshClient } from "../../sdk/client/index.js";
import { type Command, UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

const usage = `agentmesh goal <submit|ls|get|watch|cancel> [options]   (AGENTMESH_URL, AGENTMESH_API_KEY)

  submit --kind K [--input '{...}'] [--key IDEMPOTENCY_KEY] [--priority N] [--watch]
                       submit a goal; --watch shows step progress live until it ends
                       (exit 0 succeeded, 1 failed or cancelled)
  ls [--status running|succeeded|...] [--kind K] [--limit N]
  get GOAL_ID [--json]  the goal with each step's state
  watch GOAL_ID         live step progress
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
      return watch(meshFromEnv(), id);
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
  const mesh = meshFromEnv();
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
  const steps = new Map<string, { status: StepStatus; capability: string; attempt: number }>();
  const tty = process.stdout.isTTY === true;
  let drawn = 0;
  const draw = () => {
    if (!tty) return;
    if (drawn) process.stdout.write(`\x1b[${drawn}A`);
    const done = [...steps.values()].filter((s) => s.status === StepStatus.SUCCEEDED).length;
    const width = 20;
    const filled = steps.size ? Math.round((done / steps.size) * width) : 0;
    const lines = [
      `[${"█".repeat(filled)}${"░".repeat(width - filled)}] ${done}/${steps.size} steps`,
      ...[...steps].map(
        ([id, s]) =>
          `  ${stepMark[s.status] ?? "?"} ${id.padEnd(16)} ${s.capability}${s.attempt > 1 ? ` (attempt ${s.attempt})` : ""}`,
      ),
    ];
    for (const l of lines) process.stdout.write(`\x1b[2K${l}\n`);
    drawn = lines.length;
  };
  const set = (id: string, status: StepStatus, attempt?: number, capability?: string) => {
    const s = steps.get(id) ?? { status, capability: capability ?? "", attempt: 1 };
    s.status = status;
    if (attempt) s.attempt = attempt;
    if (capability) s.capability = capability;
    steps.set(id, s);
    if (!tty) console.log(`${stepMark[status] ?? "?"} ${id} ${StepStatus[status]?.toLowerCase()}`);
  };
  let final: GoalStatus | undefined;
  for await (const { event } of mesh.executor.watchGoal({ goalId })) {
    const k = event?.kind;
    switch (k?.case) {
      case "planned":
        for (const s of k.value.plan?.steps ?? [])
          set(s.stepId, StepStatus.PENDING, 1, s.capability);
        break;
      case "stepDispatched":
        set(k.value.stepId, StepStatus.DISPATCHED, k.value.attempt, k.value.capability);
        break;
      case "stepStarted":
        set(k.value.stepId, StepStatus.RUNNING, k.value.attempt);
        break;
      case "stepSucceeded":
        set(k.value.stepId, StepStatus.SUCCEEDED, k.value.attempt);
        break;
      case "stepFailed":
        set(
          k.value.stepId,
          k.value.willRetry ? StepStatus.RETRY_WAIT : StepStatus.FAILED,
          k.value.attempt,
        );
        break;
      case "finished":
        final = k.value.status;
        break;
    }
    draw();
  }
  const name = final === undefined ? "unknown" : (GoalStatus[final] ?? "unknown").toLowerCase();
  console.log(`goal ${goalId} ${name}`);
  return final === GoalStatus.SUCCEEDED ? 0 : 1;
}

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
  const { goals } = await meshFromEnv().executor.listGoals({
    statuses,
    kind: values.kind ?? "",
    pageSize: values.limit ? Number.parseInt(values.limit, 10) : 20,
  });
  table(
    ["GOAL", "KIND", "STATUS", "CREATED"],
    goals.map((g) => [
      g.goalId,
      g.kind,
      (GoalStatus[g.status] ?? "").toLowerCase(),
      g.createdAt ? timestampDate(g.createdAt).toISOString() : "",
    ]),
  );
  return 0;
}

async function get(args: string[]): Promise<number> {
  const { values, positionals } = flags(args, { json: { type: "boolean" } });
  const id = positionals[0];
  if (!id) throw new UsageError("get needs a goal id");
  const { goal: g } = await meshFromEnv().executor.getGoal({ goalId: id });
  if (!g) return 1;
  if (values.json) {
    console.log(JSON.stringify(toJson(GoalSchema, g), null, 2));
    return 0;
  }
  console.log(`goal ${g.goalId} (${g.kind}) ${(GoalStatus[g.status] ?? "").toLowerCase()}`);
  table(
    ["STEP", "CAPABILITY", "STATUS", "ATTEMPTS", "AFTER"],
    g.steps.map((s) => [
      s.stepId,
      s.capability,
      (StepStatus[s.status] ?? "").toLowerCase(),
      String(s.attempts),
      s.dependsOn.join(","),
    ]),
  );
  if (g.error) console.log(`error: ${g.error.code}: ${g.error.message}`);
  return 0;
}

async function cancel(args: string[]): Promise<number> {
  const { values, positionals } = flags(args, { reason: { type: "string" } });
  const id = positionals[0];
  if (!id) throw new UsageError("cancel needs a goal id");
  const { goal: g } = await meshFromEnv().executor.cancelGoal({
    goalId: id,
    reason: values.reason ?? "",
  });
  console.log(`goal ${id} ${(GoalStatus[g?.status ?? 0] ?? "").toLowerCase()}`);
  return 0;
}
