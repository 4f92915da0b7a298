/**
 * Agents: name, version, capabilities, state, heartbeat age, in-flight work
 * and reliability (the lowest over its capabilities) with its trend, as
 * `WatchAgents` reports them and a fresh list every 5 s (heartbeats are not
 * changes the watch reports); ages tick every second.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AgentState } from "../../gen/agentmesh/v1/registry_pb.js";
import { type Elem, h, patch } from "./dom.js";
import { age, enumName, shortId } from "./format.js";
import { sparkline } from "./sparkline.js";
import { changed, refreshAgents, state } from "./state.js";
import { every, type Mounted } from "./view.js";

export function agentsView(root: Elem): Mounted {
  const body = h("tbody");
  root.replaceChildren(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "agents-title" },
      h("h2", { id: "agents-title" }, "Agents"),
      h(
        "div",
        { class: "scroll", tabindex: 0 },
        h(
          "table",
          { id: "agents" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...[
                "Agent",
                "Version",
                "Id",
                "State",
                "Capabilities",
                "Heartbeat",
                "In flight",
                "Reliability",
              ].map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          body,
        ),
      ),
    ),
  );
  // Ages tick every second; heartbeats and in-flight counts are read every 5 s.
  const stopTick = every(1000, changed);
  const stopRead = every(5000, () => void refreshAgents());
  return {
    render() {
      const now = Date.now();
      const agents = [...state.agents.values()].sort(
        (a, b) =>
          (a.card?.name ?? "").localeCompare(b.card?.name ?? "") ||
          a.agentId.localeCompare(b.agentId),
      );
      patch(
        body,
        ...agents.map((a) => {
          const st = enumName(AgentState, a.state);
          const scores = Object.values(a.reliability);
          const trend = state.reliability.get(a.agentId) ?? [];
          const beat = a.lastHeartbeatAt ? `${age(now - timestampMs(a.lastHeartbeatAt))} ago` : "–";
          return h(
            "tr",
            { "data-agent": a.agentId },
            h("td", {}, a.card?.name ?? "–"),
            h("td", {}, a.card?.version ?? "–"),
            h("td", { title: a.agentId }, h("code", {}, shortId(a.agentId))),
            h("td", { class: st === "live" ? "status-succeeded" : "status-failed" }, st),
            h("td", { class: "caps" }, (a.card?.skills ?? []).map((s) => s.capability).join(", ")),
            h("td", {}, beat),
            h("td", {}, String(a.inFlight)),
            h(
              "td",
              { class: "num" },
              scores.length ? Math.min(...scores).toFixed(2) : "–",
              trend.length > 1
                ? sparkline(
                    trend.map((x) => x * 100),
                    `reliability of ${a.card?.name ?? a.agentId}`,
                  )
                : "",
            ),
          );
        }),
        agents.length === 0
          ? h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No agents."))
          : undefined,
      );
    },
    unmount() {
      stopTick();
      stopRead();
    },
  };
}
