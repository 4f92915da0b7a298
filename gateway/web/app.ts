/**
 * The operator console: plain DOM and the generated clients over
 * `@connectrpc/connect-web`, bundled by the gateway with esbuild. Hash routes
 * (`route.ts`) give every view and every goal a link; each view is built on
 * arrival and re-rendered from `state` when something changes. Goals are live
 * through WatchGoal streams, agents through WatchAgents; queue figures and
 * decisions are re-read while their view is open.
 */
import { adminView } from "./admin-view.js";
import { agentsView } from "./agents-view.js";
import { $, h, hash, onHashChange, patch, session, setTitle } from "./dom.js";
import { shortId } from "./format.js";
import { goalPage } from "./goal-page.js";
import { goalsView } from "./goals-view.js";
import { policyView } from "./policy-view.js";
import { queuesView } from "./queues-view.js";
import { parseRoute, type View } from "./route.js";
import { connect, may, onChange, onSay, say, state } from "./state.js";
import type { Mounted, ViewFactory } from "./view.js";

const views: Record<View, ViewFactory> = {
  goals: goalsView,
  goal: goalPage,
  agents: agentsView,
  queues: queuesView,
  policy: policyView,
  admin: adminView,
};
const titles: Record<View, string> = {
  goals: "Goals",
  goal: "Goal",
  agents: "Agents",
  queues: "Queues",
  policy: "Policy",
  admin: "Tenants and keys",
};

let mounted: Mounted | undefined;

onSay((text) => {
  $("#status").textContent = text;
});
onChange(() => mounted?.render());

/** Builds the view of the current hash (after connecting). */
function route(): void {
  mounted?.unmount?.();
  mounted = undefined;
  const r = parseRoute(hash());
  renderNav(r.view);
  const root = $("#view");
  if (!state.mesh) {
    patch(
      root,
      h("section", { class: "panel wide" }, h("p", {}, "Connect with an API key to begin.")),
    );
    return;
  }
  setTitle(`${r.view === "goal" ? `Goal ${shortId(r.goalId ?? "")}` : titles[r.view]} · agentmesh`);
  // The goals list sits beside its submit form on a wide screen.
  root.className = r.view === "goals" ? "split" : "";
  mounted = views[r.view](root, r);
  mounted.render();
  // A keyboard or screen-reader user lands on the new view's heading.
  root.querySelector("h2")?.setAttribute("tabindex", "-1");
  if (navigated) root.querySelector("h2")?.focus();
}

let navigated = false;
onHashChange(() => {
  navigated = true;
  route();
});

function renderNav(current: View): void {
  const items: [View, string][] = [
    ["goals", "Goals"],
    ["agents", "Agents"],
    ["queues", "Queues"],
    ["policy", "Policy"],
  ];
  if (may("tenant.admin")) items.push(["admin", "Tenants and keys"]);
  patch(
    $("#nav-list"),
    ...items.map(([view, label]) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            href: `#/${view}`,
            "data-key": `nav:${view}`,
            "aria-current":
              view === current || (current === "goal" && view === "goals") ? "page" : undefined,
          },
          label,
        ),
      ),
    ),
  );
}

async function start(key: string): Promise<void> {
  try {
    const me = await connect(key);
    session().setItem("agentmesh.key", key);
    say(`Connected as ${me.tenantId}/${me.subject} (${me.roles.join(", ")}).`);
    route();
  } catch (err) {
    state.mesh = undefined;
    say(`Cannot connect: ${(err as Error).message}`);
    route();
  }
}

$("#auth").addEventListener("submit", (e) => {
  e.preventDefault();
  void start($("#api-key").value.trim());
});

const saved = session().getItem("agentmesh.key");
if (saved) {
  $("#api-key").value = saved;
  void start(saved);
} else route();
