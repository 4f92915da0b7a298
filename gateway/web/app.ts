/**
 * The dashboard: plain DOM and the generated clients over
 * `@connectrpc/connect-web`, bundled by the gateway with esbuild. Goal status
 * is live through WatchGoal server streams (no polling); agents through
 * WatchAgents; queue depth and denials are refreshed when goals change.
 */

import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import type { Goal, StepState } from "../../gen/agentmesh/v1/executor_pb.js";
import { type Agent, AgentState } from "../../gen/agentmesh/v1/registry_pb.js";
import { createClient, type MeshClient } from "../../sdk/client/create-client.js";
import { applyGoalEvent } from "../../sdk/client/goal-events.js";
import { $, type Elem, element, origin, session } from "./dom.js";

let mesh: MeshClient | undefined;
let apiKey = "";
let selected: string | undefined;
const goals = new Map<string, Goal>();
const watching = new Map<string, AbortController>();
const agents = new Map<string, Agent>();
const maxWatches = 10;

const lower = (s: string | undefined) => (s ?? "unknown").toLowerCase();
const goalStatus = (g: Goal) => lower(GoalStatus[g.status]);
const terminal = (s: GoalStatus) =>
  s === GoalStatus.SUCCEEDED || s === GoalStatus.FAILED || s === GoalStatus.CANCELLED;

function say(text: string): void {
  $("#status").textContent = text;
}

function cell(row: Elem, text: string, className?: string): void {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
}

function renderGoals(): void {
  const body = $("#goals tbody");
  body.replaceChildren();
  const list = [...goals.values()].sort((a, b) =>
    Number((b.createdAt?.seconds ?? 0n) - (a.createdAt?.seconds ?? 0n)),
  );
  for (const g of list) {
    const row = body.insertRow();
    row.tabIndex = 0;
    row.dataset.goal = g.goalId;
    row.setAttribute("aria-selected", String(g.goalId === selected));
    cell(row, g.goalId);
    cell(row, g.kind);
    cell(row, goalStatus(g), `status-${goalStatus(g)}`);
    const done = g.steps.filter((s) => s.status === StepStatus.SUCCEEDED).length;
    cell(row, g.steps.length ? `${done}/${g.steps.length}` : "–");
    const pick = () => select(g.goalId);
    row.addEventListener("click", pick);
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") pick();
    });
  }
}

/** The DAG as columns of steps by depth; each step shows its state. */
function renderDag(): void {
  const dag = $("#dag");
  const g = selected ? goals.get(selected) : undefined;
  $("#dag-goal").textContent = g ? `${g.goalId} — ${goalStatus(g)}` : "";
  dag.replaceChildren();
  if (!g || g.steps.length === 0) {
    const p = element("p");
    p.className = "muted";
    p.textContent = g ? "Not planned yet." : "Select a goal.";
    dag.append(p);
    return;
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
  columns.forEach((col, i) => {
    if (i > 0) {
      const arrow = element("span");
      arrow.className = "arrow";
      arrow.setAttribute("aria-hidden", "true");
      arrow.textContent = "→";
      dag.append(arrow);
    }
    const ol = element("ol");
    ol.setAttribute("aria-label", `stage ${i + 1}`);
    for (const s of col) {
      const li = element("li");
      const status = lower(StepStatus[s.status]);
      li.className = `step status-${status}`;
      li.dataset.step = s.stepId;
      li.dataset.status = status;
      li.textContent = s.stepId;
      const small = element("small");
      small.textContent = `${s.capability} · ${status}${s.attempts > 1 ? ` · attempt ${s.attempts}` : ""}`;
      li.append(small);
      ol.append(li);
    }
    dag.append(ol);
  });
}

/** Follows a goal until it finishes; the server replays its history first. */
async function watch(goalId: string): Promise<void> {
  if (!mesh || watching.has(goalId) || watching.size >= maxWatches) return;
  const controller = new AbortController();
  watching.set(goalId, controller);
  try {
    const { goal } = await mesh.executor.getGoal({ goalId }, { signal: controller.signal });
    if (goal) goals.set(goalId, goal);
    const g = goals.get(goalId);
    if (!g || terminal(g.status)) return;
    // The stream replays the history first, so the state is rebuilt from scratch.
    for await (const { event } of mesh.executor.watchGoal(
      { goalId },
      { signal: controller.signal },
    )) {
      if (!event) continue;
      applyGoalEvent(g, event);
      renderGoals();
      if (goalId === selected) renderDag();
      if (event.kind.case === "finished" || event.kind.case === "stepSucceeded") void refreshSide();
    }
  } catch (err) {
    if (!controller.signal.aborted) say(`watch ${goalId}: ${(err as Error).message}`);
  } finally {
    watching.delete(goalId);
    renderGoals();
  }
}

async function select(goalId: string): Promise<void> {
  selected = goalId;
  renderGoals();
  renderDag();
  void watch(goalId);
}

function renderAgents(): void {
  const body = $("#agents tbody");
  body.replaceChildren();
  for (const a of agents.values()) {
    const row = body.insertRow();
    const state = lower(AgentState[a.state]);
    cell(row, a.agentId);
    cell(row, state, state === "live" ? "status-succeeded" : "status-failed");
    cell(row, (a.card?.skills ?? []).map((s) => s.capability).join(", "));
    const scores = Object.values(a.reliability);
    cell(row, scores.length ? Math.min(...scores).toFixed(2) : "–");
    cell(row, String(a.inFlight));
  }
}

async function followAgents(): Promise<void> {
  if (!mesh) return;
  const { agents: list } = await mesh.registry.listAgents({});
  for (const a of list) agents.set(a.agentId, a);
  renderAgents();
  try {
    for await (const change of mesh.registry.watchAgents({})) {
      if (change.agent) agents.set(change.agent.agentId, change.agent);
      renderAgents();
    }
  } catch {
    // The list stays as last seen; reconnecting the page re-reads it.
  }
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${apiKey}` } });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

/** Queue figures are mesh-wide: only an operator (platform.admin) key may read them. */
function showQueuesRefused(err: unknown): void {
  const body = $("#queues tbody");
  body.replaceChildren();
  const forbidden = String(err).includes("HTTP 403");
  cell(
    body.insertRow(),
    forbidden ? "queue figures need the platform.admin role" : "queue figures unavailable",
    "muted",
  );
}

let sideTimer: ReturnType<typeof setTimeout> | undefined;
/** Queue depth and denials, refreshed when something changes (at most every 500 ms). */
function refreshSide(): Promise<void> {
  if (sideTimer) return Promise.resolve();
  sideTimer = setTimeout(() => {
    sideTimer = undefined;
  }, 500);
  return Promise.all([
    getJson<{
      available: boolean;
      queues: { capability: string; depth: number; lag: number; ackPending: number }[];
    }>("/api/v1/queues").then((q) => {
      const body = $("#queues tbody");
      body.replaceChildren();
      if (!q.available) {
        const row = body.insertRow();
        cell(row, "not available from this gateway", "muted");
      }
      for (const x of q.queues) {
        const row = body.insertRow();
        cell(row, x.capability);
        cell(row, String(x.depth));
        cell(row, String(x.lag));
        cell(row, String(x.ackPending));
      }
    }, showQueuesRefused),
    getJson<{
      denials: {
        time: number;
        tenantId: string;
        subject: string;
        method: string;
        reason: string;
      }[];
    }>("/api/v1/denials").then((d) => {
      const ul = $("#denials");
      ul.replaceChildren();
      for (const x of d.denials) {
        const li = element("li");
        li.textContent = `${new Date(x.time).toLocaleTimeString()} ${x.tenantId}/${x.subject} → ${x.method}: ${x.reason}`;
        ul.append(li);
      }
      if (d.denials.length === 0) {
        const li = element("li");
        li.className = "muted";
        li.textContent = "None.";
        ul.append(li);
      }
    }),
  ]).then(
    () => undefined,
    (err: unknown) => say((err as Error).message),
  );
}

async function connect(key: string): Promise<void> {
  for (const c of watching.values()) c.abort();
  apiKey = key;
  mesh = createClient({ baseUrl: origin(), apiKey: key });
  try {
    const { goals: list } = await mesh.executor.listGoals({ pageSize: 20 });
    goals.clear();
    for (const g of list) goals.set(g.goalId, g);
    renderGoals();
    say(`Connected: ${list.length} recent goals.`);
    session().setItem("agentmesh.key", key);
    for (const g of list) if (!terminal(g.status)) void watch(g.goalId);
    void followAgents();
    void refreshSide();
  } catch (err) {
    mesh = undefined;
    say(`Cannot connect: ${(err as Error).message}`);
  }
}

$("#auth").addEventListener("submit", (e) => {
  e.preventDefault();
  void connect($("#api-key").value.trim());
});

$("#submit").addEventListener("submit", async (e) => {
  e.preventDefault();
  const error = $("#submit-error");
  error.textContent = "";
  if (!mesh) {
    error.textContent = "Connect with an API key first.";
    return;
  }
  let input: Record<string, unknown>;
  try {
    input = JSON.parse($("#input").value || "{}") as Record<string, unknown>;
  } catch (err) {
    error.textContent = `Input is not JSON: ${(err as Error).message}`;
    return;
  }
  try {
    const { goal } = await mesh.executor.submitGoal({
      kind: $("#kind").value,
      input: input as never,
    });
    if (!goal) return;
    goals.set(goal.goalId, goal);
    say(`Submitted ${goal.goalId}.`);
    await select(goal.goalId);
  } catch (err) {
    error.textContent = (err as Error).message;
    void refreshSide();
  }
});

const saved = session().getItem("agentmesh.key");
if (saved) {
  $("#api-key").value = saved;
  void connect(saved);
}
