/**
 * Policy: the gateway's recent denials (caller, method, reason), filterable,
 * re-read every 3 s while open; and, for operators, "try an input": the live
 * policy's answer to a hypothetical call, without making it.
 */
import { publicMethods } from "../public-api.js";
import { type Elem, h, patch } from "./dom.js";
import { clock } from "./format.js";
import { changed, type Denial, getJson, may, state } from "./state.js";
import { every, type Mounted } from "./view.js";

export function policyView(root: Elem): Mounted {
  const body = h("tbody");
  const filter = h("input", { id: "denial-filter", type: "search", size: 30 });
  filter.addEventListener("input", changed);
  const answer = h("p", { id: "try-answer", role: "status" });
  const methods = publicMethods().map((m) => `${m.method.parent.typeName}/${m.method.name}`);
  const tryForm = h(
    "form",
    { id: "try", "aria-labelledby": "try-title" },
    h("h2", { id: "try-title" }, "Try an input"),
    h("label", { for: "try-method" }, "Method"),
    h(
      "select",
      { id: "try-method", name: "method" },
      ...methods.map((m) => h("option", { value: m, selected: m.endsWith("/SubmitGoal") }, m)),
    ),
    h("label", { for: "try-tenant" }, "Tenant"),
    h("input", {
      id: "try-tenant",
      name: "tenant",
      required: true,
      value: state.me?.tenantId ?? "",
    }),
    h("label", { for: "try-roles" }, "Roles (comma-separated)"),
    h("input", { id: "try-roles", name: "roles", value: "goals.read" }),
    h("label", { for: "try-kind" }, "Goal kind (if the method has one)"),
    h("input", { id: "try-kind", name: "kind" }),
    h("label", { for: "try-capability" }, "Capability (if the method has one)"),
    h("input", { id: "try-capability", name: "capability" }),
    h("button", { type: "submit" }, "Evaluate"),
    answer,
  );
  tryForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["method", "tenant", "roles", "kind", "capability"]) {
      q.set(name, tryForm.querySelector(`#try-${name}`)?.value.trim() ?? "");
    }
    answer.textContent = "Evaluating…";
    getJson<{ available: boolean; allow?: boolean; reason?: string }>(
      `/api/v1/policy/try?${q}`,
    ).then(
      (r) => {
        answer.className = r.allow ? "status-succeeded" : "status-failed";
        answer.textContent = !r.available
          ? "The policy cannot be asked from this gateway."
          : `${r.allow ? "Allowed" : "Denied"}${r.reason ? `: ${r.reason}` : ""}`;
      },
      (err: unknown) => {
        answer.className = "error";
        answer.textContent = (err as Error).message;
      },
    );
  });
  root.replaceChildren(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "denials-title" },
      h("h2", { id: "denials-title" }, "Recent policy denials"),
      h("label", { for: "denial-filter" }, "Filter (tenant, caller, method or reason) "),
      filter,
      h(
        "div",
        { class: "scroll", tabindex: 0 },
        h(
          "table",
          { id: "denials" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Time", "Caller", "Method", "Reason"].map((t) => h("th", { scope: "col" }, t)),
            ),
          ),
          body,
        ),
      ),
    ),
    may("platform.admin")
      ? h("section", { class: "panel" }, tryForm)
      : h(
          "section",
          { class: "panel" },
          h("h2", {}, "Try an input"),
          h("p", { class: "muted" }, "Trying the policy needs the platform.admin role."),
        ),
  );
  const stop = every(3000, () => {
    getJson<{ denials: Denial[] }>("/api/v1/denials").then(
      (d) => {
        state.denials = d.denials;
        changed();
      },
      () => undefined,
    );
  });
  return {
    render() {
      const words = filter.value.trim().toLowerCase();
      const list = state.denials.filter(
        (d) =>
          !words ||
          `${d.tenantId}/${d.subject} ${d.method} ${d.reason}`.toLowerCase().includes(words),
      );
      patch(
        body,
        ...list.map((d) =>
          h(
            "tr",
            {},
            h("td", {}, clock(d.time)),
            h("td", {}, `${d.tenantId}/${d.subject}`),
            h("td", {}, d.method),
            h("td", {}, d.reason),
          ),
        ),
        list.length === 0
          ? h("tr", {}, h("td", { colspan: 4, class: "muted" }, "None."))
          : undefined,
      );
    },
    unmount: stop,
  };
}
