/**
 * Which recent policy decisions a reader asked for: the console's policy
 * view and `agentmesh policy decisions` filter with this one rule, so the
 * same filters show the same decisions in both.
 *
 * @example
 * decisions.filter((d) => matchesDecision(d, { decision: "denied", who: "acme/", method: "SubmitGoal" }));
 */

export interface DecisionFilter {
  /** "allowed", "denied", or empty for both. */
  decision?: string;
  /** Part of the caller as `tenant/subject`, any case; empty for anyone. */
  who?: string;
  /** The method, e.g. "agentmesh.v1.ExecutorService/SubmitGoal", without the package or just its name. */
  method?: string;
}

export interface DecisionFacts {
  tenantId: string;
  subject: string;
  method: string;
  allow: boolean;
}

export function matchesDecision(d: DecisionFacts, filter: DecisionFilter): boolean {
  const { decision = "", method = "" } = filter;
  const who = (filter.who ?? "").trim().toLowerCase();
  return (
    (decision === "" || (decision === "allowed") === d.allow) &&
    (method === "" ||
      d.method === method ||
      d.method.endsWith(method.includes("/") ? `.${method}` : `/${method}`)) &&
    (!who || `${d.tenantId}/${d.subject}`.toLowerCase().includes(who))
  );
}
