/**
 * Queues per capability, read every 2 s while the view is open: depth,
 * waiting (not yet delivered: the consumer lag), in flight (delivered, not
 * settled) and redelivered, with charts of the last minutes as the gateway
 * sampled them (so they show history from the moment the view opens).
 * Mesh-wide figures, so only for the operator role.
 */
import { type Elem, h, patch } from "./dom.js";
import { sparkline } from "./sparkline.js";
import { changed, getJson, type QueueRow, state } from "./state.js";
import { every, type Mounted } from "./view.js";

export function queuesView(root: Elem): Mounted {
  const body = h("tbody");
  const note = h("p", { class: "muted", id: "queues-note" });
  root.replaceChildren(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "queues-title" },
      h("h2", { id: "queues-title" }, "Queues"),
      note,
      h(
        "div",
        { class: "scroll", tabindex: 0 },
        h(
          "table",
          { id: "queues" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Capability", "Depth", "Waiting (lag)", "In flight", "Redelivered"].map((t) =>
                h("th", { scope: "col" }, t),
              ),
            ),
          ),
          body,
        ),
      ),
    ),
  );
  const stop = every(2000, () => void refreshQueues());
  return {
    render() {
      note.textContent = state.queuesNote;
      const rows = [...state.queues.values()].sort((a, b) =>
        a.row.capability.localeCompare(b.row.capability),
      );
      patch(
        body,
        ...rows.map(({ row, depth, lag, inFlight }) =>
          h(
            "tr",
            { "data-capability": row.capability },
            h("th", { scope: "row" }, row.capability),
            h(
              "td",
              { class: "num" },
              h("span", { "data-depth": "" }, String(row.depth)),
              sparkline(depth, `depth of ${row.capability}`),
            ),
            h(
              "td",
              { class: "num" },
              String(row.lag),
              sparkline(lag, `waiting in ${row.capability}`),
            ),
            h(
              "td",
              { class: "num" },
              String(row.ackPending),
              sparkline(inFlight, `in flight in ${row.capability}`),
            ),
            h("td", { class: "num" }, String(row.redelivered)),
          ),
        ),
      );
    },
    unmount: stop,
  };
}

async function refreshQueues(): Promise<void> {
  try {
    const q = await getJson<{
      available: boolean;
      sampleIntervalMs: number;
      historyMs: number;
      queues: (QueueRow & { history: { depth: number[]; lag: number[]; ackPending: number[] } })[];
    }>("/api/v1/queues");
    state.queuesNote = !q.available
      ? "Queue figures are not available from this gateway."
      : q.sampleIntervalMs
        ? `Charts: the last ${q.historyMs / 60_000} minutes, a sample every ${q.sampleIntervalMs / 1000} s.`
        : "";
    state.queues.clear();
    for (const { history, ...row } of q.queues) {
      state.queues.set(row.capability, {
        row,
        depth: history.depth,
        lag: history.lag,
        inFlight: history.ackPending,
      });
    }
  } catch (err) {
    state.queuesNote = `Queue figures: ${(err as Error).message}`;
  }
  changed();
}
