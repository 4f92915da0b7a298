/**
 * One goal: its facts (ids, trace, parent), output or error, the plan as a
 * DAG, each step with its input, output and error and a link to its child
 * goal, a timeline of attempts (start, end, agent, attempt, retry reason),
 * the event history, and Cancel / Resubmit for callers who may write goals.
 */
import { toJson } from "@bufbuild/protobuf";
import { timestampMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type ErrorInfo, GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import type { GoalEvent, StepState } from "../../gen/agentmesh/v1/executor_pb.js";
import { type Elem, h, patch, setHash } from "./dom.js";
import { clock, enumName, pretty, shortId, span } from "./format.js";
import { type GoalView, isTerminal } from "./goal-model.js";
import { copyButton, goalIdCell } from "./goals-view.js";
import { goalHref, type Route } from "./route.js";
import { agentLabel, follow, mayWrite, remember, say, state } from "./state.js";
import type { Mounted } from "./view.js";

const ms = (t: { seconds: bigint; nanos: number } | undefined) =>
  t ? timestampMs(t as never) : undefined;
const json = (v: unknown) => (v === undefined ? undefined : toJson(ValueSchema, v as never));

export function goalPage(root: Elem, route: Route): Mounted {
  const goalId = route.goalId ?? "";
  const head = h("div", { class: "facts" });
  const actions = h("div", { class: "actions" });
  const result = h("div");
  const dag = h("div", { id: "dag", class: "dag" });
  const steps = h("div", { id: "steps" });
  const timeline = h("tbody");
  const events = h("tbody");
  const actionError = h("p", { class: "error", role: "alert" });
  root.replaceChildren(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "goal-title" },
      h("h2", { id: "goal-title" }, "Goal ", h("code", { id: "goal-id" }, goalId)),
      head,
      actions,
      actionError,
      result,
    ),
    h(
      "section",
      { id: "plan", class: "panel wide", "aria-labelledby": "dag-title" },
      h("h2", { id: "dag-title" }, "Plan"),
      dag,
    ),
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "steps-title" },
      h("h2", { id: "steps-title" }, "Steps"),
      steps,
    ),
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "attempts-title" },
      h("h2", { id: "attempts-title" }, "Attempts"),
      table(
        "attempts",
        [
          "Step",
          "Attempt",
          "Agent",
          "Dispatched",
          "Started",
          "Ended",
          "Took",
          "Outcome",
          "Retry reason",
        ],
        timeline,
      ),
    ),
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "events-title" },
      h("h2", { id: "events-title" }, "Event history"),
      table("events", ["#", "Time", "Event", "Details"], events),
    ),
  );
  follow(goalId, true);

  const cancel = async () => {
    actionError.textContent = "";
    try {
      const { goal } = await state.mesh!.executor.cancelGoal({
        goalId,
        reason: "cancelled from the console",
      });
      if (goal) remember(goal);
      say(`Cancel requested for ${shortId(goalId)}.`);
    } catch (err) {
      actionError.textContent = (err as Error).message;
    }
  };
  const resubmit = async (view: GoalView) => {
    actionError.textContent = "";
    try {
      const { goal } = await state.mesh!.executor.submitGoal({
        kind: view.goal.kind,
        input: view.goal.input,
        priority: view.goal.priority,
        labels: view.goal.labels,
      });
      if (!goal) return;
      remember(goal);
      say(`Resubmitted as ${shortId(goal.goalId)}.`);
      setHash(goalHref(goal.goalId));
    } catch (err) {
      actionError.textContent = (err as Error).message;
    }
  };

  return {
    render() {
      const view = state.goals.get(goalId);
      if (!view) {
        patch(head, h("p", { class: "muted" }, "Loading…"));
        return;
      }
      const g = view.goal;
      const status = enumName(GoalStatus, g.status);
      patch(
        head,
        h(
          "dl",
          {},
          ...fact("Status", h("span", { class: `status-${status}`, id: "goal-status" }, status)),
          ...fact("Kind", g.kind),
          ...fact("Tenant", g.tenantId),
          ...fact("Strategy", g.strategy || "–"),
          ...fact("Created", clock(ms(g.createdAt))),
          ...fact("Finished", clock(ms(g.finishedAt))),
          ...fact(
            "Trace id",
            g.traceId
              ? h("span", {}, h("code", {}, g.traceId), copyButton(g.traceId, "trace id"))
              : "–",
          ),
          ...fact("Idempotency key", g.idempotencyKey || "–"),
          ...(g.parentGoalId
            ? fact(
                "Parent goal",
                h("span", {}, goalIdCell(g.parentGoalId), ` step ${g.parentStepId}`),
              )
            : []),
        ),
      );
      const canCancel = mayWrite() && !isTerminal(g.status);
      const cancelButton = h("button", { type: "button", disabled: !canCancel }, "Cancel goal");
      cancelButton.addEventListener("click", () => void cancel());
      const resubmitButton = h("button", { type: "button", disabled: !mayWrite() }, "Resubmit");
      resubmitButton.addEventListener("click", () => void resubmit(view));
      patch(
        actions,
        cancelButton,
        resubmitButton,
        mayWrite()
          ? undefined
          : h("span", { class: "muted" }, "Cancel and resubmit need goals.write."),
      );
      patch(
        result,
        // The server redacts sensitive fields for whom the policy does not let submit the tenant's goals.
        !mayWrite() &&
          h(
            "p",
            { class: "muted", id: "redaction-note" },
            "Sensitive inputs and outputs are sent in clear only to callers the policy lets submit this tenant's goals (goals.write by default).",
          ),
        h("h3", {}, "Input"),
        h("pre", { tabindex: 0, id: "goal-input" }, pretty(g.input)),
        g.output !== undefined && h("h3", {}, "Output"),
        g.output !== undefined &&
          h("pre", { tabindex: 0, id: "goal-output" }, pretty(json(g.output))),
        g.error && h("h3", {}, "Error"),
        g.error && errorBlock(g.error, "goal-error"),
      );
      patch(dag, ...renderDag(view));
      patch(steps, ...g.steps.map((s) => stepBlock(view, s)));
      patch(
        timeline,
        ...view.attempts.map((a) =>
          h(
            "tr",
            { "data-attempt": `${a.stepId}:${a.attempt}` },
            h("td", {}, a.stepId),
            h("td", {}, String(a.attempt)),
            h("td", {}, a.agentId ? agentLabel(a.agentId) : "–"),
            h("td", {}, clock(a.dispatchedAt)),
            h("td", {}, clock(a.startedAt)),
            h("td", {}, clock(a.endedAt)),
            h("td", {}, span(a.startedAt ?? a.dispatchedAt, a.endedAt)),
            h("td", { class: `status-${a.outcome}` }, a.outcome),
            h(
              "td",
              {},
              a.error
                ? `${a.error.code}: ${a.error.message}${a.backoffMs !== undefined ? ` (retry in ${a.backoffMs} ms)` : ""}`
                : "",
            ),
          ),
        ),
      );
      patch(
        events,
        ...view.events.map((e) =>
          h(
            "tr",
            {},
            h("td", {}, String(e.sequence)),
            h("td", {}, clock(ms(e.time))),
            h("td", {}, e.kind.case ?? "?"),
            h("td", {}, eventDetails(e)),
          ),
        ),
      );
    },
  };
}

function table(id: string, heads: string[], body: Elem): Elem {
  return h(
    "div",
    { class: "scroll", tabindex: 0 },
    h(
      "table",
      { id },
      h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", { scope: "col" }, t)))),
      body,
    ),
  );
}

const fact = (term: string, value: Elem | string) => [h("dt", {}, term), h("dd", {}, value)];

function errorBlock(e: ErrorInfo, id?: string): Elem {
  return h(
    "pre",
    { class: "error-text", tabindex: 0, ...(id ? { id } : {}) },
    `${e.code}${e.retryable ? " (retryable)" : ""}: ${e.message}`,
  );
}

function stepBlock(view: GoalView, s: StepState): Elem {
  const status = enumName(StepStatus, s.status);
  const planned = view.plan?.steps.find((p) => p.stepId === s.stepId);
  return h(
    "details",
    {
      class: "step-detail",
      "data-step": s.stepId,
      "data-status": status,
      open: s.status === StepStatus.FAILED,
    },
    h(
      "summary",
      {},
      h("strong", {}, s.stepId),
      ` ${s.capability || "sub-goal"} · `,
      h("span", { class: `status-${status}` }, status),
      ` · ${s.attempts} attempt${s.attempts === 1 ? "" : "s"}`,
      s.agentIds.length ? ` · ${s.agentIds.map(agentLabel).join(", ")}` : "",
    ),
    s.childGoalId && h("p", {}, "Child goal: ", goalIdCell(s.childGoalId)),
    h(
      "p",
      { class: "muted" },
      `Started ${clock(ms(s.startedAt))}, finished ${clock(ms(s.finishedAt))}`,
    ),
    planned?.input && h("h4", {}, "Input (as planned)"),
    planned?.input && h("pre", { tabindex: 0 }, pretty(planned.input)),
    s.output !== undefined && h("h4", {}, "Output"),
    s.output !== undefined &&
      h("pre", { tabindex: 0, class: "step-output" }, pretty(json(s.output))),
    s.error && h("h4", {}, "Error"),
    s.error && errorBlock(s.error),
  );
}

function eventDetails(e: GoalEvent): string {
  const k = e.kind;
  switch (k.case) {
    case "submitted":
      return `kind ${k.value.kind}`;
    case "planned":
      return `strategy ${k.value.plan?.strategy ?? ""}, ${k.value.plan?.steps.length ?? 0} steps`;
    case "stepDispatched":
      return `${k.value.stepId} attempt ${k.value.attempt} → ${k.value.capability}`;
    case "stepStarted":
      return `${k.value.stepId} attempt ${k.value.attempt} on ${agentLabel(k.value.agentId)}`;
    case "stepSucceeded":
      return `${k.value.stepId} attempt ${k.value.attempt}`;
    case "stepFailed":
      return `${k.value.stepId} attempt ${k.value.attempt}: ${k.value.error?.code} ${k.value.error?.message}${k.value.willRetry ? " (will retry)" : ""}`;
    case "stepRetried":
      return `${k.value.stepId} attempt ${k.value.nextAttempt} next`;
    case "finished":
      return `${enumName(GoalStatus, k.value.status)}${k.value.error ? `: ${k.value.error.message}` : ""}`;
    case "waitingForAgents":
      return `no live agent for ${k.value.capabilities.join(", ")}`;
    default:
      return "";
  }
}

/** The DAG as columns of steps by depth; each step shows its state. */
export function renderDag(view: GoalView): Elem[] {
  const g = view.goal;
  if (g.steps.length === 0) {
    return [h("p", { class: "muted" }, view.detailed ? "No steps (not planned)." : "Loading…")];
  }
  const depth = new Map<string, number>();
  const byId = new Map(g.steps.map((s) => [s.stepId, s]));
  const level = (s: StepState, seen = new Set<string>()): number => {
    const known = depth.get(s.stepId);
    if (known !== undefined) return known;
    if (seen.has(s.stepId)) return 0; // a cycle would be a planner bug; do not hang on it
    seen.add(s.stepId);
    const d =
      Math.max(
        -1,
        ...s.dependsOn.map((id) => (byId.has(id) ? level(byId.get(id) as StepState, seen) : -1)),
      ) + 1;
    depth.set(s.stepId, d);
    return d;
  };
  const columns: StepState[][] = [];
  for (const s of g.steps) {
    const d = level(s);
    columns[d] = [...(columns[d] ?? []), s];
  }
  const out: Elem[] = [];
  columns.forEach((col, i) => {
    if (i > 0) out.push(h("span", { class: "arrow", "aria-hidden": "true" }, "→"));
    out.push(
      h(
        "ol",
        { "aria-label": `stage ${i + 1}` },
        ...col.map((s) => {
          const status = enumName(StepStatus, s.status);
          return h(
            "li",
            { class: `step status-${status}`, "data-step": s.stepId, "data-status": status },
            s.stepId,
            h(
              "small",
              {},
              `${s.capability || "sub-goal"} · ${status}${s.attempts > 1 ? ` · attempt ${s.attempts}` : ""}`,
            ),
            s.childGoalId
              ? h("a", { href: goalHref(s.childGoalId) }, `child ${shortId(s.childGoalId)}`)
              : "",
          );
        }),
      ),
    );
  });
  return out;
}
