/**
 * Tenants and API keys, as AdminService allows the caller: an operator
 * (platform.admin) lists, creates, suspends and resumes tenants and manages
 * any tenant's keys;
 * a tenant admin manages its own tenant's keys. A new key's secret is shown
 * once. The picked tenant's usage (GetTenantUsage) is shown to both; an
 * operator also edits its limits and feature flags (UpdateTenant).
 */
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { ApiKey, Tenant, TenantUsage } from "../../gen/agentmesh/v1/admin_pb.js";
import { type Elem, h, patch } from "./dom.js";
import { clock } from "./format.js";
import { changed, may, say, state } from "./state.js";
import type { Mounted } from "./view.js";

// The roles of `roleIncludes` in gateway/admin-service.ts (the server refuses what the caller may not grant).
const knownRoles = [
  "goals.read",
  "goals.write",
  "capabilities.run",
  "tenant.admin",
  "platform.admin",
];

/** The numeric limits an operator edits: input id, label, the tenant's value. 0 means the default. */
const limitFields = [
  ["l-rate", "Requests per second", (t: Tenant) => t.rateLimitPerSecond],
  ["l-streams", "Open streams", (t: Tenant) => t.maxConcurrentStreams],
  ["l-goals", "Goals in flight", (t: Tenant) => t.maxConcurrentGoals],
  ["l-input", "Largest goal input (bytes)", (t: Tenant) => t.maxGoalInputBytes],
] as const;

export function adminView(root: Elem): Mounted {
  const operator = may("platform.admin");
  let tenants: Tenant[] = [];
  let keys: ApiKey[] = [];
  let tenantId = state.me?.tenantId ?? "";
  const tenantBody = h("tbody");
  const keyBody = h("tbody");
  const keysTitle = h("h2", { id: "keys-title" });
  const error = h("p", { class: "error", role: "alert" });
  const secret = h("div", { id: "new-secret", "aria-live": "polite" });
  const usageList = h("dl", { id: "tenant-usage" });
  const limitsTitle = h("h2", { id: "limits-title" });
  const admin = () => state.mesh!.admin;
  const fail = (err: unknown) => {
    error.textContent = (err as Error).message;
  };

  const loadTenants = async () => {
    if (!operator) return;
    tenants = (await admin().listTenants({ pageSize: 500 })).tenants;
    changed();
  };
  const loadKeys = async () => {
    keys = (await admin().listApiKeys({ tenantId })).keys;
    changed();
  };
  const loadUsage = async () => {
    const { usage } = await admin().getTenantUsage({ tenantId });
    showUsage(usage);
  };
  const showUsage = (u: TenantUsage | undefined) => {
    const statuses = Object.entries(u?.goalsByStatus ?? {})
      .map(([k, n]) => `${k.toLowerCase()} ${n}`)
      .join(", ");
    const row = (term: string, value: string) => [h("dt", {}, term), h("dd", {}, value)];
    patch(
      usageList,
      ...row("Goals", statuses || "none"),
      ...row("Goals in flight", String(u?.goalsInFlight ?? 0)),
      ...row("Requests admitted", String(u?.requestsAdmitted ?? 0)),
      ...row("Requests refused", String(u?.requestsRefused ?? 0)),
    );
  };

  // An operator's editor of the picked tenant's limits and feature flags (0 or empty: the default).
  const limitsForm = h(
    "form",
    { id: "tenant-limits", "aria-label": "Limits and feature flags" },
    ...limitFields.flatMap(([id, label]) => [
      h("label", { for: id }, label),
      h("input", { id, type: "number", min: 0, step: "any", size: 8 }),
    ]),
    h("label", { for: "l-selector" }, "Learning selector"),
    h("input", { id: "l-selector", size: 14 }),
    h("label", { class: "check" }, h("input", { id: "l-llm", type: "checkbox" }), " LLM planner"),
    h("label", { class: "check" }, h("input", { id: "l-canary", type: "checkbox" }), " Canaries"),
    h("button", { type: "submit" }, "Save limits"),
  );
  const input = (id: string) => limitsForm.querySelector(`#${id}`)!;
  const fillLimits = () => {
    const t = tenants.find((x) => x.tenantId === tenantId);
    if (!t) return;
    for (const [id, , value] of limitFields) input(id).value = String(value(t));
    input("l-selector").value = t.features?.learningSelector ?? "";
    input("l-llm").checked = t.features?.llmPlanner ?? false;
    input("l-canary").checked = t.features?.canary ?? false;
  };
  limitsForm.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    const num = (id: string) => Math.max(0, Number(input(id).value || 0));
    const id = tenantId;
    admin()
      .updateTenant({
        tenantId: id,
        rateLimitPerSecond: num("l-rate"),
        maxConcurrentStreams: Math.floor(num("l-streams")),
        maxConcurrentGoals: Math.floor(num("l-goals")),
        maxGoalInputBytes: Math.floor(num("l-input")),
        learningSelector: input("l-selector").value.trim(),
        llmPlanner: input("l-llm").checked,
        canary: input("l-canary").checked,
      })
      .then(() => {
        say(`Saved the limits of ${id}.`);
        return loadTenants();
      })
      .then(fillLimits)
      .catch(fail);
  });
  const pickTenant = (id: string) => {
    tenantId = id;
    secret.replaceChildren();
    fillLimits();
    void loadKeys().catch(fail);
    void loadUsage().catch(fail);
  };

  const tenantForm = h(
    "form",
    { id: "new-tenant", "aria-label": "Create a tenant" },
    h("label", { for: "t-id" }, "Tenant id"),
    h("input", { id: "t-id", required: true, pattern: "[a-z0-9][a-z0-9\\-]*", size: 14 }),
    h("label", { for: "t-name" }, "Display name"),
    h("input", { id: "t-name", size: 18 }),
    h("button", { type: "submit" }, "Create tenant"),
  );
  tenantForm.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    const id = tenantForm.querySelector("#t-id")?.value.trim() ?? "";
    const displayName = tenantForm.querySelector("#t-name")?.value.trim() ?? "";
    admin()
      .createTenant({ tenant: { tenantId: id, displayName } })
      .then(() => {
        say(`Created tenant ${id}.`);
        return loadTenants();
      })
      .catch(fail);
  });

  const keyForm = h(
    "form",
    { id: "new-key", "aria-label": "Create an API key" },
    h("label", { for: "k-name" }, "Key name"),
    h("input", { id: "k-name", required: true, size: 14 }),
    h(
      "fieldset",
      {},
      h("legend", {}, "Roles"),
      ...knownRoles.map((r) =>
        h(
          "label",
          { class: "check" },
          h("input", { type: "checkbox", name: "role", value: r, checked: r === "goals.read" }),
          ` ${r}`,
        ),
      ),
    ),
    h("label", { for: "k-days" }, "Expires in days (optional)"),
    h("input", { id: "k-days", type: "number", min: 1, max: 3650, size: 5 }),
    h("button", { type: "submit" }, "Create key"),
  );
  keyForm.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    const roles = knownRoles.filter(
      (r) => keyForm.querySelector(`input[value="${r}"]`)?.checked ?? false,
    );
    const days = Number(keyForm.querySelector("#k-days")?.value || 0);
    admin()
      .createApiKey({
        tenantId,
        name: keyForm.querySelector("#k-name")?.value.trim() ?? "",
        roles,
        ...(days > 0 ? { expiresAt: timestampFromMs(Date.now() + days * 86_400_000) } : {}),
      })
      .then((r) => {
        secret.replaceChildren(
          h("p", {}, `Key ${r.key?.keyId} for ${tenantId}; its secret is shown only now:`),
          h("pre", { class: "secret" }, r.secret),
        );
        return loadKeys();
      })
      .catch(fail);
  });

  patch(
    root,
    operator &&
      h(
        "section",
        { class: "panel wide", "aria-labelledby": "tenants-title" },
        h("h2", { id: "tenants-title" }, "Tenants"),
        h(
          "div",
          { class: "scroll", tabindex: 0 },
          h(
            "table",
            { id: "tenants" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ...["Tenant", "Name", "Status", "Created", "Rate/s", "Streams", ""].map((t, i) =>
                  h(i === 6 ? "td" : "th", i === 6 ? {} : { scope: "col" }, t),
                ),
              ),
            ),
            tenantBody,
          ),
        ),
        tenantForm,
      ),
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "limits-title" },
      limitsTitle,
      usageList,
      operator && limitsForm,
    ),
    h(
      "section",
      { class: "panel wide", "aria-labelledby": "keys-title" },
      keysTitle,
      error,
      h(
        "div",
        { class: "scroll", tabindex: 0 },
        h(
          "table",
          { id: "keys" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Key id", "Name", "Roles", "Created", "Expires", "Revoked", ""].map((t, i) =>
                h(i === 6 ? "td" : "th", i === 6 ? {} : { scope: "col" }, t),
              ),
            ),
          ),
          keyBody,
        ),
      ),
      keyForm,
      secret,
    ),
  );
  void loadTenants().then(fillLimits).catch(fail);
  void loadKeys().catch(fail);
  void loadUsage().catch(fail);

  return {
    render() {
      keysTitle.textContent = `API keys of ${tenantId}`;
      limitsTitle.textContent = `Usage${operator ? " and limits" : ""} of ${tenantId}`;
      patch(
        tenantBody,
        ...tenants.map((t) => {
          const pick = h(
            "button",
            {
              type: "button",
              "data-key": `tenant:${t.tenantId}`,
              "aria-label": `Keys of ${t.tenantId}`,
            },
            "Keys",
          );
          pick.addEventListener("click", () => pickTenant(t.tenantId));
          // Suspending refuses the tenant's calls (within the gateways' refresh, 5 s).
          const suspended = t.suspendedAt !== undefined;
          const toggle = h(
            "button",
            {
              type: "button",
              "data-key": `suspend:${t.tenantId}`,
              "aria-label": `${suspended ? "Resume" : "Suspend"} tenant ${t.tenantId}`,
            },
            suspended ? "Resume" : "Suspend",
          );
          toggle.addEventListener("click", () => {
            error.textContent = "";
            const call = suspended
              ? admin().resumeTenant({ tenantId: t.tenantId })
              : admin().suspendTenant({
                  tenantId: t.tenantId,
                  reason: "suspended from the console",
                });
            call
              .then(() => {
                say(`${suspended ? "Resumed" : "Suspended"} tenant ${t.tenantId}.`);
                return loadTenants();
              })
              .catch(fail);
          });
          return h(
            "tr",
            {
              "aria-current": t.tenantId === tenantId ? "true" : undefined,
              "data-tenant": t.tenantId,
            },
            h("td", {}, t.tenantId),
            h("td", {}, t.displayName),
            h(
              "td",
              { class: suspended ? "status-failed" : "status-succeeded", "data-status": "" },
              suspended ? `suspended: ${t.suspendedReason}` : "active",
            ),
            h("td", {}, clock(t.createdAt ? timestampMs(t.createdAt) : undefined)),
            h("td", {}, t.rateLimitPerSecond ? String(t.rateLimitPerSecond) : "default"),
            h("td", {}, t.maxConcurrentStreams ? String(t.maxConcurrentStreams) : "default"),
            h(
              "td",
              { class: "row-actions" },
              pick,
              t.tenantId === state.me?.tenantId ? "" : toggle,
            ),
          );
        }),
      );
      patch(
        keyBody,
        ...keys.map((k) => {
          const revoke = h(
            "button",
            {
              type: "button",
              disabled: k.revokedAt !== undefined,
              "data-key": `revoke:${k.keyId}`,
              "aria-label": `Revoke key ${k.keyId}`,
            },
            "Revoke",
          );
          revoke.addEventListener("click", () => {
            error.textContent = "";
            admin()
              .revokeApiKey({ tenantId, keyId: k.keyId })
              .then(() => {
                say(`Revoked key ${k.keyId}.`);
                return loadKeys();
              })
              .catch(fail);
          });
          return h(
            "tr",
            { "data-keyid": k.keyId },
            h("td", {}, h("code", {}, k.keyId)),
            h("td", {}, k.name),
            h("td", {}, k.roles.join(", ")),
            h("td", {}, clock(k.createdAt ? timestampMs(k.createdAt) : undefined)),
            h("td", {}, k.expiresAt ? clock(timestampMs(k.expiresAt)) : "never"),
            h("td", {}, k.revokedAt ? clock(timestampMs(k.revokedAt)) : "–"),
            h("td", {}, revoke),
          );
        }),
      );
    },
  };
}
