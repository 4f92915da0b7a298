/**
 * Alerts for the mesh's known failures, each on a metric the processes serve
 * (`test/ops-metrics.test.ts` scrapes them) and each with its runbook in
 * `docs/runbooks/<runbook>.md`. Gauges every process reports alike (the bus's
 * dead letters, the registry's fleet) are taken with `max` over processes.
 */
export interface KnownAlert {
  alert: string;
  expr: string;
  for?: string;
  severity: "page" | "ticket";
  summary: string;
  description: string;
  /** The file name in `docs/runbooks/`, without `.md`. */
  runbook: string;
}

export const knownAlerts: readonly KnownAlert[] = [
  {
    alert: "AgentmeshBusDown",
    expr: "agentmesh_bus_up == 0",
    for: "1m",
    severity: "page",
    summary: "{{ $labels.instance }} cannot reach NATS JetStream",
    description:
      "The process's bus connection has been down for a minute: no job is dispatched, no result comes back and new goals are refused with UNAVAILABLE.",
    runbook: "bus-down",
  },
  {
    alert: "AgentmeshDatabaseDown",
    expr: "agentmesh_store_up == 0",
    for: "1m",
    severity: "page",
    summary: "{{ $labels.instance }} cannot reach PostgreSQL",
    description:
      "The store's health probe has failed for a minute: calls answer UNAVAILABLE, /readyz says not ready, and results wait on the bus until the database is back.",
    runbook: "database-down",
  },
  {
    alert: "AgentmeshCertificateExpiring",
    expr: "agentmesh_cert_expiry_timestamp_seconds - time() < 7 * 86400",
    for: "10m",
    severity: "ticket",
    summary: "Certificate {{ $labels.name }} of {{ $labels.instance }} expires within 7 days",
    description:
      "The workload certificate {{ $labels.spiffe_id }} loaded by this process expires in less than a week; nothing has rotated it (cert-manager renews at two thirds of its life).",
    runbook: "certificate-expiring",
  },
  {
    alert: "AgentmeshPolicyBundleRejected",
    expr: "agentmesh_policy_last_reload_error == 1",
    for: "5m",
    severity: "ticket",
    summary: "{{ $labels.instance }} rejected a new policy bundle",
    description:
      "The last policy bundle reload failed its checks; the last good bundle keeps serving, so the change you shipped is not in force.",
    runbook: "policy-bundle-rejected",
  },
  {
    alert: "AgentmeshPolicyNotLoaded",
    expr: "agentmesh_policy_ready == 0",
    for: "1m",
    severity: "page",
    summary: "{{ $labels.instance }} has no policy bundle and denies every call",
    description:
      "No policy bundle is loaded, so the process fails closed: every RPC it receives is denied.",
    runbook: "policy-not-loaded",
  },
  {
    alert: "AgentmeshDeadLettersGrowing",
    expr: "max by (queue) (delta(agentmesh_bus_dead_letters[15m])) > 0",
    severity: "ticket",
    summary: "Dead letters on queue {{ $labels.queue }} grew in the last 15 minutes",
    description:
      "Messages of {{ $labels.queue }} ran out of deliveries and were moved to the dead-letter stream: they will not run unless replayed.",
    runbook: "dead-letters-growing",
  },
  {
    alert: "AgentmeshAgentFleetShrinking",
    expr: "max by (capability) (agentmesh_registry_live_agents) < 0.5 * max by (capability) (max_over_time(agentmesh_registry_live_agents[1h]))",
    for: "5m",
    severity: "page",
    summary:
      "Live agents offering {{ $labels.capability }} fell below half of the last hour's peak",
    description:
      "Agents are leaving faster than they come back (crashes, lost leases, a bad rollout): steps of {{ $labels.capability }} queue up and goals wait for agents.",
    runbook: "agent-fleet-shrinking",
  },
];
