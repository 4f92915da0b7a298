/**
 * What the console holds in memory and how it keeps it fresh: the client,
 * who the caller is, the goals it has seen (as `GoalView`s), agents, queue
 * and reliability samples. Goals are kept live through `WatchGoal` streams
 * (at most `maxWatches` at once, the rest wait their turn); every change
 * calls `changed()`, which re-renders the current view once per tick.
 */
import type { Goal } from "../../gen/agentmesh/v1/executor_pb.js";
import type { Agent } from "../../gen/agentmesh/v1/registry_pb.js";
import { createClient, type MeshClient } from "../../sdk/client/create-client.js";
import { origin } from "./dom.js";
import { applyEvent, type GoalView, goalView, isTerminal, mergeSnapshot } from "./goal-model.js";
import { push } from "./sparkline.js";

export interface Me {
  tenantId: string;
  subject: string;
  /** Effective roles (with the roles they include). */
  roles: string[];
}

export interface QueueRow {
  capability: string;
  depth: number;
  lag: number;
  ackPending: number;
  redelivered: number;
}

/** A policy decision as the policy view shows it (`input` only for admins). */
export interface DecisionRow {
  time: number;
  tenantId: string;
  subject: string;
  method: string;
  allow: boolean;
  reason: string;
  input?: unknown;
}

export const state = {
  mesh: undefined as MeshClient | undefined,
  apiKey: "",
  me: undefined as Me | undefined,
  goals: new Map<string, GoalView>(),
  agents: new Map<string, Agent>(),
  /** Lowest reliability of each agent, sampled on each change. */
  reliability: new Map<string, number[]>(),
  queues: new Map<string, { row: QueueRow; depth: number[]; lag: number[]; inFlight: number[] }>(),
  queuesNote: "",
  decisions: [] as DecisionRow[],
};

/** Streams open at once (a tenant has 100 by default; leave most to others). */
const maxWatches = 12;
const watching = new Map<string, AbortController>();
const waiting = new Set<string>();
const history = new Set<string>();
let session = new AbortController();

let renderer: () => void = () => {};
let scheduled = false;
export function onChange(f: () => void): void {
  renderer = f;
}
/** Re-renders the current view on the next tick (many changes, one render). */
export function changed(): void {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    renderer();
  }, 0);
}

export const may = (...roles: string[]) =>
  roles.some((r) => state.me?.roles.includes(r) ?? false) ||
  (state.me?.roles.includes("platform.admin") ?? false);
/** Whether the caller may submit and cancel goals. */
export const mayWrite = () => may("goals.write");

/** An agent as people know it: its card's name and the start of its id. */
export function agentLabel(agentId: string): string {
  const name = state.agents.get(agentId)?.card?.name;
  return name ? `${name} (${agentId.slice(0, 8)})` : agentId;
}

/** A JSON read of the dashboard's own endpoints (`/api/v1/...`). */
export async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${state.apiKey}` } });
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as { message?: string };
    throw new Error(body.message ?? `${path}: HTTP ${res.status}`);
  }
  return (await res.json()) as T;
}

/** Connects with `key`: checks it (`/api/v1/me`), then drops what an earlier key saw. */
export async function connect(key: string): Promise<Me> {
  state.apiKey = key;
  const me = await getJson<Me>("/api/v1/me");
  session.abort();
  session = new AbortController();
  watching.clear();
  waiting.clear();
  history.clear();
  state.goals.clear();
  state.agents.clear();
  state.reliability.clear();
  state.queues.clear();
  state.decisions = [];
  state.me = me;
  state.mesh = createClient({ baseUrl: origin(), apiKey: key });
  void followAgents(session.signal);
  changed();
  return me;
}

/** The view of `goal`, merged with what is known. */
export function remember(goal: Goal): GoalView {
  let view = state.goals.get(goal.goalId);
  if (view) mergeSnapshot(view, goal);
  else {
    view = goalView(goal);
    state.goals.set(goal.goalId, view);
  }
  changed();
  return view;
}

/**
 * Keeps a goal live: reads it (`GetGoal`, which also brings the steps a list
 * row lacks), then, unless it has finished, follows its events. With
 * `withHistory` the events are read even for a finished goal (its page shows them).
 */
export function follow(goalId: string, withHistory = false): void {
  if (withHistory) history.add(goalId);
  if (watching.has(goalId)) return;
  if (watching.size >= maxWatches) {
    waiting.add(goalId);
    return;
  }
  waiting.delete(goalId);
  const controller = new AbortController();
  const signal = AbortSignal.any([controller.signal, session.signal]);
  watching.set(goalId, controller);
  void watch(goalId, signal).finally(() => {
    if (watching.get(goalId) === controller) watching.delete(goalId);
    const next = waiting.values().next();
    if (!next.done && !session.signal.aborted) follow(next.value);
  });
}

async function watch(goalId: string, signal: AbortSignal): Promise<void> {
  const mesh = state.mesh;
  if (!mesh) return;
  for (let tries = 0; !signal.aborted; tries++) {
    try {
      const { goal } = await mesh.executor.getGoal({ goalId }, { signal });
      if (!goal) return;
      const view = remember(goal);
      const needHistory = history.has(goalId) && view.lastSeq === 0;
      if (isTerminal(view.goal.status) && !needHistory) return;
      for await (const { event } of mesh.executor.watchGoal(
        { goalId, afterSequence: BigInt(view.lastSeq) },
        { signal },
      )) {
        if (event && applyEvent(view, event)) changed();
      }
      // The stream ends when the goal finishes; one last read settles the steps.
      const after = await mesh.executor.getGoal({ goalId }, { signal });
      if (after.goal) remember(after.goal);
      if (isTerminal(view.goal.status)) return;
    } catch (err) {
      if (signal.aborted) return;
      if (tries >= 5) {
        say(`Lost goal ${goalId}: ${(err as Error).message}`);
        return;
      }
    }
    await new Promise((r) => setTimeout(r, 500 * 2 ** Math.min(tries, 4)));
  }
}

function keepAgent(a: Agent): void {
  state.agents.set(a.agentId, a);
  const scores = Object.values(a.reliability);
  if (scores.length) {
    const series = state.reliability.get(a.agentId) ?? [];
    push(series, Math.min(...scores));
    state.reliability.set(a.agentId, series);
  }
}

/**
 * Reads the agents again: `WatchAgents` reports changes of state, not each
 * heartbeat, so heartbeat ages and in-flight counts come from a fresh list.
 */
export async function refreshAgents(): Promise<void> {
  const mesh = state.mesh;
  if (!mesh) return;
  try {
    const { agents } = await mesh.registry.listAgents({}, { signal: session.signal });
    for (const a of agents) keepAgent(a);
    changed();
  } catch {
    // The list stays as last seen.
  }
}

/** Agents as listed, then as `WatchAgents` reports them. */
async function followAgents(signal: AbortSignal): Promise<void> {
  const mesh = state.mesh;
  if (!mesh) return;
  try {
    const { agents } = await mesh.registry.listAgents({}, { signal });
    for (const a of agents) keepAgent(a);
    changed();
    for await (const change of mesh.registry.watchAgents({}, { signal })) {
      if (change.agent) keepAgent(change.agent);
      changed();
    }
  } catch {
    // The list stays as last seen; connecting again re-reads it.
  }
}

let sayTarget: (text: string) => void = () => {};
export function onSay(f: (text: string) => void): void {
  sayTarget = f;
}
/** A line in the status bar (announced politely to screen readers). */
export function say(text: string): void {
  sayTarget(text);
}
