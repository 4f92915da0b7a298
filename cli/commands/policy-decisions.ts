/**
 * `agentmesh policy decisions`: the gateway's recent policy decisions on
 * public calls (AdminService/ListPolicyDecisions: a tenant admin its
 * tenant's, a platform admin any tenant's or every tenant's), filtered as
 * the console's policy view filters them (`lib/policy/decision-filter.ts`).
 */
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { PolicyDecisionSchema } from "../../gen/agentmesh/v1/admin_pb.js";
import { matchesDecision } from "../../lib/policy/decision-filter.js";
import { UsageError } from "../command.js";
import { flags, meshFromEnv, reporting, table } from "./gateway-client.js";

/** The gateway keeps this many decisions (and as many denials apart); filters apply to them all. */
const kept = 500;

export function policyDecisions(args: string[]): Promise<number> {
  return reporting(async () => {
    const { values, positionals } = flags(args, {
      decision: { type: "string", default: "" },
      who: { type: "string", default: "" },
      method: { type: "string", default: "" },
      tenant: { type: "string", default: "" },
      "all-tenants": { type: "boolean", default: false },
      limit: { type: "string", default: "50" },
      json: { type: "boolean", default: false },
    });
    if (positionals.length > 0) {
      throw new UsageError(`unexpected arguments: ${positionals.join(" ")}`);
    }
    if (!["", "allowed", "denied"].includes(values.decision)) {
      throw new UsageError(`--decision: expected allowed or denied, got ${values.decision}`);
    }
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1) {
      throw new UsageError(`--limit: expected a positive whole number, got ${values.limit}`);
    }
    const mesh = await meshFromEnv();
    const { decisions } = await mesh.admin.listPolicyDecisions({
      tenantId: values.tenant,
      allTenants: values["all-tenants"],
      // As the console: denials are kept apart, so asking for them reaches further back.
      deniedOnly: values.decision === "denied",
      limit: kept,
    });
    const shown = decisions.filter((d) => matchesDecision(d, values)).slice(0, limit);
    if (values.json) {
      for (const d of shown) console.log(JSON.stringify(toJson(PolicyDecisionSchema, d)));
      return 0;
    }
    table(
      ["TIME", "DECISION", "CALLER", "METHOD", "REASON"],
      shown.map((d) => [
        d.time ? timestampDate(d.time).toISOString() : "",
        d.allow ? "allowed" : "denied",
        `${d.tenantId}/${d.subject}`,
        d.method.replace(/^agentmesh\.v1\./, ""),
        d.reason,
      ]),
    );
    return 0;
  });
}
