/**
 * The dashboard's hash routes, so every view and every goal has a link:
 * `#/goals?status=running&kind=diamond&since=1h&q=...`, `#/goals/<id>`,
 * `#/agents`, `#/queues`, `#/policy?decision=denied&who=acme&method=...`, `#/admin`.
 * Pure, browser-safe.
 */

export type View = "goals" | "goal" | "agents" | "queues" | "policy" | "admin";

export interface Route {
  view: View;
  /** The goal of `#/goals/<id>`. */
  goalId?: string;
  /** Query parameters (filters of the goals list). */
  query: Record<string, string>;
}

const views: readonly View[] = ["goals", "agents", "queues", "policy", "admin"];

/** The route of a location hash; anything unknown is the goals list. */
export function parseRoute(hash: string): Route {
  const [path = "", search = ""] = hash.replace(/^#\/?/, "").split("?", 2);
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(search)) if (v) query[k] = v;
  const [first, second] = path.split("/").map((p) => decodeURIComponent(p));
  if (first === "goals" && second) return { view: "goal", goalId: second, query };
  const view = views.find((v) => v === first) ?? "goals";
  return { view, query };
}

/** The hash of a route; empty query values are left out. */
export function formatRoute(route: Route): string {
  const path =
    route.view === "goal" ? `goals/${encodeURIComponent(route.goalId ?? "")}` : route.view;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(route.query)) if (v) q.set(k, v);
  const search = q.toString();
  return `#/${path}${search ? `?${search}` : ""}`;
}

export const goalHref = (goalId: string) => formatRoute({ view: "goal", goalId, query: {} });

/** Time ranges of the goals list, by their query value. */
export const timeRanges: Readonly<Record<string, { label: string; ms: number }>> = {
  "15m": { label: "last 15 minutes", ms: 15 * 60_000 },
  "1h": { label: "last hour", ms: 3_600_000 },
  "24h": { label: "last 24 hours", ms: 86_400_000 },
  "7d": { label: "last 7 days", ms: 7 * 86_400_000 },
};
