/**
 * The goals list: submit a goal, filter by status, kind and time range,
 * search by goal id or idempotency key, page through, and watch rows change
 * live (the page is re-read every few seconds; unfinished goals are followed).
 */
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import type { Goal } from "../../gen/agentmesh/v1/executor_pb.js";
import { copy, type Elem, h, patch, setHash } from "./dom.js";
import { clock, enumName, shortId } from "./format.js";
import { isTerminal, stepCount } from "./goal-model.js";
import { formatRoute, goalHref, type Route, timeRanges } from "./route.js";
import { changed, follow, mayWrite, remember, say, state } from "./state.js";
import { every, type Mounted } from "./view.js";

const pageSize = 20;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const statuses = ["pending", "planning", "running", "succeeded", "failed", "cancelled"];
/** Tokens of the pages before the current one, for "Newer". */
let previous: string[] = [];

/** A valid input of the prefilled kind (`research` needs `text`). */
const example = {
  kind: "research",
  input:
    '{"topic": "tides", "text": "Tides are the rise and fall of sea levels caused by the Moon."}',
};

/** A goal id: short, linked to its page, with a button that copies the whole id. */
export function goalIdCell(goalId: string): Elem {
  return h(
    "span",
    { class: "id" },
    h(
      "a",
      { href: goalHref(goalId), title: goalId, "data-key": `goal:${goalId}` },
      shortId(goalId),
    ),
    copyButton(goalId, "goal id"),
  );
}

export function copyButton(text: string, what: string): Elem {
  const b = h(
    "button",
    { type: "button", class: "copy", "aria-label": `Copy ${what} ${text}` },
    "copy",
  );
  b.addEventListener("click", () => {
    void copy(text).then((ok) => say(ok ? `Copied ${text}.` : `Copy not allowed here: ${text}`));
  });
  return b;
}

export function goalsView(root: Elem, route: Route): Mounted {
  const q = route.query;
  let ids: string[] = [];
  let next = "";
  let note = "Loading…";
  const body = h("tbody");
  const pager = h("div", { class: "pager" });
  const submitError = h("p", { id: "submit-error", class: "error", role: "alert" });
  const submitted = h("p", { class: "submitted", "aria-live": "polite" });

  const submit = h(
    "form",
    { id: "submit", "aria-labelledby": "submit-title" },
    h("h2", { id: "submit-title" }, "Submit a goal"),
    h("label", { for: "kind" }, "Kind"),
    h("input", { id: "kind", name: "kind", required: true, value: example.kind }),
    h("label", { for: "input" }, "Input (JSON object)"),
    h("textarea", { id: "input", name: "input", rows: 3, value: example.input }),
    h("label", { for: "idem" }, "Idempotency key (optional)"),
    h("input", { id: "idem", name: "idem", autocomplete: "off" }),
    h("button", { type: "submit" }, "Submit"),
    submitError,
    submitted,
  );
  submit.addEventListener("submit", (e) => {
    e.preventDefault();
    void submitGoal(submit, submitError, submitted, (goal) => {
      if (!ids.includes(goal.goalId) && matches(goal, q)) ids = [goal.goalId, ...ids];
    });
  });

  const statusSelect = h(
    "select",
    { id: "f-status", name: "status" },
    h("option", { value: "" }, "any"),
    ...statuses.map((s) => h("option", { value: s, selected: q.status === s }, s)),
  );
  const sinceSelect = h(
    "select",
    { id: "f-since", name: "since" },
    h("option", { value: "" }, "any time"),
    ...Object.entries(timeRanges).map(([k, r]) =>
      h("option", { value: k, selected: q.since === k }, r.label),
    ),
  );
  const filters = h(
    "form",
    { id: "filters", role: "search", "aria-label": "Filter goals" },
    h("label", { for: "f-status" }, "Status"),
    statusSelect,
    h("label", { for: "f-kind" }, "Kind"),
    h("input", { id: "f-kind", name: "kind", value: q.kind ?? "", size: 12 }),
    h("label", { for: "f-since" }, "Created"),
    sinceSelect,
    h("label", { for: "f-q" }, "Goal id or idempotency key"),
    h("input", { id: "f-q", name: "q", type: "search", value: q.q ?? "", size: 24 }),
    h("button", { type: "submit" }, "Apply"),
  );
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    previous = [];
    const value = (sel: string) => filters.querySelector(sel)?.value.trim() ?? "";
    setHash(
      formatRoute({
        view: "goals",
        query: {
          status: value("#f-status"),
          kind: value("#f-kind"),
          since: value("#f-since"),
          q: value("#f-q"),
        },
      }),
    );
  });

  root.replaceChildren(
    h("section", { class: "panel" }, submit),
    h(
      "section",
      { class: "panel", "aria-labelledby": "goals-title" },
      h("h2", { id: "goals-title" }, "Goals"),
      filters,
      h(
        "div",
        { class: "scroll", tabindex: 0 },
        h(
          "table",
          { id: "goals" },
          h("caption", { class: "sr-only" }, "Goals, newest first"),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Goal", "Kind", "Status", "Steps", "Created"].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          body,
        ),
      ),
      pager,
    ),
  );

  const load = async () => {
    const mesh = state.mesh;
    if (!mesh) return;
    try {
      let goals: Goal[];
      if (q.q) {
        // The goal submitted with that idempotency key; else, for an id, that goal.
        goals = (await mesh.executor.listGoals({ idempotencyKey: q.q })).goals;
        if (goals.length === 0 && uuid.test(q.q)) {
          const byId = await mesh.executor.getGoal({ goalId: q.q }).then(
            (r) => r.goal,
            () => undefined,
          );
          if (byId) goals = [byId];
        }
        next = "";
      } else {
        const since = q.since ? timeRanges[q.since] : undefined;
        const status = statuses.indexOf(q.status ?? "");
        const page = await mesh.executor.listGoals({
          pageSize,
          ...(q.page ? { pageToken: q.page } : {}),
          ...(q.kind ? { kind: q.kind } : {}),
          ...(status >= 0 ? { statuses: [(status + 1) as GoalStatus] } : {}),
          ...(since ? { createdAfter: timestampFromMs(Date.now() - since.ms) } : {}),
        });
        goals = page.goals;
        next = page.nextPageToken;
      }
      // Goals submitted here since the last read stay on top until the list has them.
      const fresh = ids.filter((id) => !goals.some((g) => g.goalId === id) && !q.page);
      ids = [...fresh, ...goals.map((g) => g.goalId)];
      for (const g of goals) {
        const view = remember(g);
        // A row needs its steps (GetGoal); an unfinished goal is followed live.
        if (!view.detailed || !isTerminal(view.goal.status)) follow(g.goalId);
      }
      note = ids.length ? "" : "No goals match.";
    } catch (err) {
      note = `Cannot list goals: ${(err as Error).message}`;
    }
    changed();
  };
  const stop = every(3000, () => void load());

  return {
    render() {
      const rows = ids.map((id) => state.goals.get(id)).filter((v) => v !== undefined);
      patch(
        body,
        ...rows.map((v) => {
          const g = v.goal;
          const status = enumName(GoalStatus, g.status);
          return h(
            "tr",
            { "data-goal": g.goalId },
            h("td", {}, goalIdCell(g.goalId)),
            h("td", {}, g.kind),
            h("td", { class: `status-${status}`, "data-status": status }, status),
            h("td", { "data-steps": "" }, stepCount(v)),
            h("td", {}, clock(g.createdAt ? timestampMs(g.createdAt) : undefined)),
          );
        }),
        note ? h("tr", {}, h("td", { colspan: 5, class: "muted" }, note)) : undefined,
      );
      const newer = h("button", { type: "button", disabled: previous.length === 0 }, "← Newer");
      newer.addEventListener("click", () => {
        const page = previous.pop() ?? "";
        setHash(formatRoute({ view: "goals", query: { ...q, page } }));
      });
      const older = h("button", { type: "button", disabled: !next }, "Older →");
      older.addEventListener("click", () => {
        previous.push(q.page ?? "");
        setHash(formatRoute({ view: "goals", query: { ...q, page: next } }));
      });
      patch(pager, newer, older);
      submit.querySelector("button")?.setAttribute("aria-disabled", String(!mayWrite()));
    },
    unmount: stop,
  };
}

/** Whether a new goal belongs on the list as filtered. */
function matches(goal: Goal, q: Record<string, string>): boolean {
  if (q.page || q.q) return false;
  if (q.kind && goal.kind !== q.kind) return false;
  if (q.status && enumName(GoalStatus, goal.status) !== q.status) return false;
  return true;
}

async function submitGoal(
  form: Elem,
  error: Elem,
  done: Elem,
  added: (goal: Goal) => void,
): Promise<void> {
  error.textContent = "";
  const mesh = state.mesh;
  if (!mesh) {
    error.textContent = "Connect with an API key first.";
    return;
  }
  const field = (sel: string) => form.querySelector(sel)?.value.trim() ?? "";
  let input: unknown;
  try {
    input = JSON.parse(field("#input") || "{}");
  } catch (err) {
    error.textContent = `Input is not JSON: ${(err as Error).message}`;
    return;
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    error.textContent = "Input must be a JSON object.";
    return;
  }
  try {
    const key = field("#idem");
    const { goal } = await mesh.executor.submitGoal({
      kind: field("#kind"),
      input: input as never,
      ...(key ? { idempotencyKey: key } : {}),
    });
    if (!goal) return;
    remember(goal);
    added(goal);
    follow(goal.goalId);
    done.replaceChildren(
      "Submitted ",
      h("a", { href: goalHref(goal.goalId), "data-key": "submitted" }, shortId(goal.goalId)),
      ".",
    );
    changed();
  } catch (err) {
    error.textContent = (err as Error).message;
  }
}
