/**
 * Policy: the gateway's recent decisions on public calls, allowed and
 * denied, with what the policy read of each call and its reason, filterable
 * by decision, tenant or caller, and method (kept in the link); re-read
 * every 3 s while open.
 * Admins read them (`AdminService/ListPolicyDecisions`: a tenant admin its
 * tenant's, an operator every tenant's); anyone else sees its tenant's
 * denials, without inputs. And, for operators, "try an input": the live
 * policy's answer to a hypothetical call, without making it.
 */
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { matchesDecision } from "../../lib/policy/decision-filter.js";
import { publicMethods } from "../public-api.js";
import { type Elem, h, patch, replaceHash } from "./dom.js";
import { clock } from "./format.js";
import { formatRoute, type Route } from "./route.js";
import { changed, type DecisionRow, getJson, may, state } from "./state.js";
import { every, type Mounted } from "./view.js";

/** What the view says of where its decisions come from (it shows the gateway's only). */
const source =
  "Decisions this gateway made on public calls: the last 500, and the last 200 denials kept apart. " +
  "Calls between services are decided by each service and go to its decision log, not here.";

export function policyView(root: Elem, route: Route): Mounted {
  const body = h("tbody");
  const admin = may("tenant.admin");
  const operator = may("platform.admin");
  const methods = publicMethods().map((m) => `${m.method.parent.typeName}/${m.method.name}`);
  const decision = h(
    "select",
    { id: "decision-filter" },
    h("option", { value: "" }, "Allowed and denied"),
    h("option", { value: "allowed" }, "Allowed"),
    h("option", { value: "denied" }, "Denied"),
  );
  const who = h("input", { id: "who-filter", type: "search", size: 24 });
  const method = h(
    "select",
    { id: "method-filter" },
    h("option", { value: "" }, "Any method"),
    ...methods.map((m) => h("option", { value: m }, m.replace(/^agentmesh\.v1\./, ""))),
  );
  // Filters come from the link (`#/policy?decision=denied&who=acme&method=...`) and go back to it.
  decision.value = admin ? (route.query.decision ?? "") : "";
  who.value = route.query.who ?? "";
  method.value = route.query.method ?? "";
  const filtered = () => {
    replaceHash(
      formatRoute({
        view: "policy",
        query: { decision: decision.value, who: who.value.trim(), method: method.value },
      }),
    );
    changed();
  };
  const refresh = () => void readDecisions(admin, operator, decision.value === "denied");
  decision.addEventListener("change", () => {
    refresh();
    filtered();
  });
  who.addEventListener("input", filtered);
  method.addEventListener("change", filtered);
  const answer = h("p", { id: "try-answer", role: "status" });
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
  const filters = h(
    "form",
    { id: "decision-filters", role: "search", "aria-label": "Filter decisions" },
    ...(admin ? [h("label", { for: "decision-filter" }, "Decision"), decision] : []),
    h("label", { for: "who-filter" }, "Tenant or caller"),
    who,
    h("label", { for: "method-filter" }, "Method"),
    method,
  );
  // Filters apply as they change; Enter must not reload the page.
  filters.addEventListener("submit", (e) => e.preventDefault());
  const columns = ["Time", "Decision", "Caller", "Method", "Reason", ...(admin ? ["Input"] : [])];
  root.replaceChildren(
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "decisions-title" },
      h(
        "h2",
        { id: "decisions-title" },
        admin ? "Recent policy decisions" : "Recent policy denials",
      ),
      h(
        "p",
        { class: "muted", id: "decisions-source" },
        admin
          ? source
          : `${source} Allowed decisions and what the policy read need the tenant.admin role.`,
      ),
      filters,
      h(
        "div",
        { class: "scroll", tabindex: 0, role: "region", "aria-label": "Decisions" },
        h(
          "table",
          { id: "decisions" },
          h("thead", {}, h("tr", {}, ...columns.map((t) => h("th", { scope: "col" }, t)))),
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
  const stop = every(3000, refresh);
  return {
    render() {
      const list = state.decisions.filter((d) =>
        matchesDecision(d, { decision: decision.value, who: who.value, method: method.value }),
      );
      patch(
        body,
        ...list.map((d) =>
          h(
            "tr",
            { "data-allow": String(d.allow) },
            h("td", { class: "num" }, clock(d.time)),
            h(
              "td",
              { class: d.allow ? "status-succeeded" : "status-failed" },
              d.allow ? "allowed" : "denied",
            ),
            h("td", {}, `${d.tenantId}/${d.subject}`),
            h("td", {}, d.method.replace(/^agentmesh\.v1\./, "")),
            h("td", {}, d.reason),
            admin
              ? h("td", {}, h("code", { class: "json" }, JSON.stringify(d.input ?? {})))
              : undefined,
          ),
        ),
        list.length === 0
          ? h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "None."))
          : undefined,
      );
    },
    unmount: stop,
  };
}

let reads = 0;
/** Reads the decisions the caller may see into `state.decisions` (a later read wins). */
async function readDecisions(admin: boolean, operator: boolean, deniedOnly: boolean) {
  const read = ++reads;
  try {
    if (admin && state.mesh) {
      const { decisions } = await state.mesh.admin.listPolicyDecisions({
        allTenants: operator,
        deniedOnly,
        limit: 200,
      });
      if (read !== reads) return;
      state.decisions = decisions.map((d) => ({
        time: d.time ? timestampMs(d.time) : 0,
        tenantId: d.tenantId,
        subject: d.subject,
        method: d.method,
        allow: d.allow,
        reason: d.reason,
        input: d.input,
      }));
    } else {
      const { denials } = await getJson<{ denials: Omit<DecisionRow, "allow">[] }>(
        "/api/v1/denials",
      );
      if (read !== reads) return;
      state.decisions = denials.map((d) => ({ ...d, allow: false }));
    }
    changed();
  } catch {
    // The table stays as last read.
  }
}
