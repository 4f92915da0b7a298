/**
 * The Grafana dashboards, as JSON ready for file provisioning
 * (`ops/grafana/provisioning/dashboards.yaml` points Grafana at them). Built
 * from data here so every panel's query is a string the tests can read: each
 * metric and label a query names must show on some process's `/metrics`
 * (`test/ops-metrics.test.ts`), so no panel points at nothing.
 *
 * @example
 * for (const d of grafanaDashboards()) writeFileSync(`ops/grafana/${d.uid}.json`, JSON.stringify(d, null, 2));
 */

export interface Panel {
  title: string;
  /** PromQL per series, with its legend. */
  queries: { expr: string; legend: string }[];
  kind?: "timeseries" | "stat";
  unit?: string;
  description?: string;
}

interface DashboardSpec {
  uid: string;
  title: string;
  description: string;
  /** Template variables: label values of a metric. */
  variables?: { name: string; metric: string; label: string }[];
  panels: Panel[];
}

const q = (expr: string, legend = "") => ({ expr, legend });
const p95 = (metric: string, by: string, filter = "") =>
  `histogram_quantile(0.95, sum by (le, ${by}) (rate(${metric}_bucket${filter}[5m])))`;

const tenantVar = { name: "tenant", metric: "agentmesh_goals_finished_total", label: "tenant" };

export const dashboardSpecs: readonly DashboardSpec[] = [
  {
    uid: "agentmesh-overview",
    title: "agentmesh / mesh overview",
    description: "Goals, SLOs and calls across the whole mesh.",
    panels: [
      {
        title: "Goal success ratio (5m)",
        kind: "stat",
        unit: "percentunit",
        queries: [
          q(
            'sum(rate(agentmesh_goals_finished_total{status="succeeded"}[5m])) / sum(rate(agentmesh_goals_finished_total{status=~"succeeded|failed"}[5m]))',
          ),
        ],
      },
      {
        title: "Goals finished by status",
        unit: "ops",
        queries: [q("sum by (status) (rate(agentmesh_goals_finished_total[5m]))", "{{status}}")],
      },
      {
        title: "Goal latency p50 / p95 / p99",
        unit: "s",
        queries: [0.5, 0.95, 0.99].map((x) =>
          q(
            `histogram_quantile(${x}, sum by (le) (rate(agentmesh_goal_duration_seconds_bucket[5m])))`,
            `p${x * 100}`,
          ),
        ),
      },
      {
        title: "SLO error ratio over 1h, against each objective's budget",
        unit: "percentunit",
        description: "From the recording rules of ops/slo.yaml.",
        queries: [
          q("agentmesh_slo:sli_error:ratio_rate1h", "{{slo}} 1h"),
          q("1 - agentmesh_slo:objective:ratio", "{{slo}} budget"),
        ],
      },
      {
        title: "Error budget left over 30 days (SLOs with a 30d window)",
        kind: "stat",
        unit: "percentunit",
        queries: [
          q(
            "1 - agentmesh_slo:sli_error:ratio_rate30d / on (slo) (1 - agentmesh_slo:objective:ratio)",
            "{{slo}}",
          ),
        ],
      },
      {
        title: "RPC errors by method",
        unit: "ops",
        queries: [
          q(
            'sum by (service, method, code) (rate(agentmesh_rpc_errors_total{side="server"}[5m]))',
            "{{service}}/{{method}} {{code}}",
          ),
        ],
      },
      {
        title: "RPC latency p95 by method (server side)",
        unit: "s",
        queries: [
          q(
            p95("agentmesh_rpc_duration_seconds", "service, method", '{side="server"}'),
            "{{service}}/{{method}}",
          ),
        ],
      },
    ],
  },
  {
    uid: "agentmesh-tenant",
    title: "agentmesh / tenant",
    description:
      "One tenant's goals, queue waits and steps. Tenants outside AGENTMESH_METRICS_TENANTS are together under `other`.",
    variables: [tenantVar],
    panels: [
      {
        title: "Goal success ratio by kind",
        unit: "percentunit",
        queries: [
          q(
            'sum by (kind) (rate(agentmesh_goals_finished_total{tenant="$tenant",status="succeeded"}[5m])) / sum by (kind) (rate(agentmesh_goals_finished_total{tenant="$tenant",status=~"succeeded|failed"}[5m]))',
            "{{kind}}",
          ),
        ],
      },
      {
        title: "Goals finished by kind and status",
        unit: "ops",
        queries: [
          q(
            'sum by (kind, status) (rate(agentmesh_goals_finished_total{tenant="$tenant"}[5m]))',
            "{{kind}} {{status}}",
          ),
        ],
      },
      {
        title: "Goal latency p95 by kind",
        unit: "s",
        queries: [
          q(p95("agentmesh_goal_duration_seconds", "kind", '{tenant="$tenant"}'), "{{kind}}"),
        ],
      },
      {
        title: "Queue wait p95 by capability",
        unit: "s",
        queries: [
          q(
            p95("agentmesh_job_queue_wait_seconds", "capability", '{tenant="$tenant"}'),
            "{{capability}}",
          ),
        ],
      },
      {
        title: "Step latency p95 by capability",
        unit: "s",
        queries: [
          q(
            p95("agentmesh_step_duration_seconds", "capability", '{tenant="$tenant"}'),
            "{{capability}}",
          ),
        ],
      },
    ],
  },
  {
    uid: "agentmesh-agents-queues",
    title: "agentmesh / agents and queues",
    description: "The agent fleet, what it runs and the JetStream queues feeding it.",
    panels: [
      {
        title: "Live agents by capability",
        queries: [q("max by (capability) (agentmesh_registry_live_agents)", "{{capability}}")],
      },
      {
        title: "Agent processes ready / jobs in flight",
        queries: [
          q("sum(agentmesh_agent_ready)", "ready"),
          q("sum(agentmesh_agent_jobs_in_flight)", "in flight"),
        ],
      },
      {
        title: "Jobs settled by capability and outcome",
        unit: "ops",
        queries: [
          q(
            "sum by (capability, outcome) (rate(agentmesh_agent_jobs_total[5m]))",
            "{{capability}} {{outcome}}",
          ),
        ],
      },
      {
        title: "Queue depth, lag and unacknowledged by capability",
        queries: [
          q("max by (capability) (agentmesh_bus_queue_depth)", "{{capability}} depth"),
          q("max by (capability) (agentmesh_bus_consumer_lag)", "{{capability}} lag"),
          q("max by (capability) (agentmesh_bus_ack_pending)", "{{capability}} unacked"),
        ],
      },
      {
        title: "Queue wait p95 by capability",
        unit: "s",
        queries: [q(p95("agentmesh_job_queue_wait_seconds", "capability"), "{{capability}}")],
      },
      {
        title: "Step latency p95 by capability",
        unit: "s",
        queries: [q(p95("agentmesh_step_duration_seconds", "capability"), "{{capability}}")],
      },
      {
        title: "Dead letters by queue",
        queries: [q("max by (queue) (agentmesh_bus_dead_letters)", "{{queue}}")],
      },
    ],
  },
  {
    uid: "agentmesh-policy",
    title: "agentmesh / policy decisions",
    description: "The OPA policy every call passes: decisions, denials, reloads.",
    panels: [
      {
        title: "Decisions by result",
        unit: "ops",
        queries: [
          q(
            "sum by (result, cached) (rate(agentmesh_policy_decisions_total[5m]))",
            "{{result}} cached={{cached}}",
          ),
        ],
      },
      {
        title: "Denied calls by method",
        unit: "ops",
        queries: [
          q(
            "sum by (service, method) (rate(agentmesh_rpc_denials_total[5m]))",
            "{{service}}/{{method}}",
          ),
        ],
      },
      {
        title: "Evaluation errors",
        unit: "ops",
        queries: [q("sum(rate(agentmesh_policy_evaluation_errors_total[5m]))", "errors")],
      },
      {
        title: "Bundle reloads by result",
        queries: [
          q("sum by (result) (increase(agentmesh_policy_reloads_total[1h]))", "{{result}}"),
        ],
      },
      {
        title: "Processes without a bundle / with a rejected reload",
        kind: "stat",
        queries: [
          q("count(agentmesh_policy_ready == 0) or vector(0)", "not loaded"),
          q("count(agentmesh_policy_last_reload_error == 1) or vector(0)", "reload rejected"),
        ],
      },
      {
        title: "Bundle revisions serving",
        queries: [
          q("count by (revision, role) (agentmesh_policy_bundle_info)", "{{role}} {{revision}}"),
        ],
      },
    ],
  },
  {
    uid: "agentmesh-certificates",
    title: "agentmesh / certificates",
    description: "Workload certificates each process has loaded, and their rotation.",
    panels: [
      {
        title: "Days until expiry",
        unit: "d",
        queries: [
          q(
            "min by (name, spiffe_id) (agentmesh_cert_expiry_timestamp_seconds - time()) / 86400",
            "{{name}} {{spiffe_id}}",
          ),
        ],
      },
      {
        title: "Soonest expiry",
        kind: "stat",
        unit: "d",
        queries: [q("min(agentmesh_cert_expiry_timestamp_seconds - time()) / 86400", "days")],
      },
      {
        title: "Certificate reloads by result",
        queries: [
          q(
            "sum by (name, result) (increase(agentmesh_cert_reloads_total[1h]))",
            "{{name}} {{result}}",
          ),
        ],
      },
    ],
  },
  {
    uid: "agentmesh-database-bus",
    title: "agentmesh / database and bus",
    description: "PostgreSQL and NATS JetStream as each process sees them.",
    panels: [
      {
        title: "Processes reaching PostgreSQL / NATS",
        kind: "stat",
        queries: [
          q("sum(agentmesh_store_up)", "store up"),
          q("count(agentmesh_store_up == 0) or vector(0)", "store down"),
          q("sum(agentmesh_bus_up)", "bus up"),
          q("count(agentmesh_bus_up == 0) or vector(0)", "bus down"),
        ],
      },
      {
        title: "SQL statements and transactions per second",
        unit: "ops",
        queries: [
          q("sum(rate(agentmesh_store_statements_total[5m]))", "statements"),
          q("sum(rate(agentmesh_store_transactions_total[5m]))", "transactions"),
        ],
      },
      {
        title: "Jobs waiting (all capabilities)",
        queries: [q("sum(max by (capability) (agentmesh_bus_queue_depth))", "depth")],
      },
      {
        title: "Dead letters (all queues)",
        queries: [q("sum(max by (queue) (agentmesh_bus_dead_letters))", "dead letters")],
      },
      {
        title: "Process memory and event loop lag",
        queries: [
          q("process_resident_memory_bytes", "{{instance}} rss"),
          q("nodejs_eventloop_lag_p99_seconds", "{{instance}} loop lag p99"),
        ],
      },
    ],
  },
];

/** The dashboards as Grafana JSON models (schema 39), one per spec. */
export function grafanaDashboards(): Record<string, unknown>[] {
  return dashboardSpecs.map(dashboardJson);
}

function dashboardJson(spec: DashboardSpec): Record<string, unknown> {
  // Grafana's own variable syntax, filled in when the dashboard is opened.
  const datasource = { type: "prometheus", uid: ["$", "{datasource}"].join("") };
  let y = 0;
  const panels = spec.panels.map((panel, i) => {
    const stat = panel.kind === "stat";
    const w = stat ? 8 : 12;
    const x = (i % 2) * 12;
    const gridPos = { h: 8, w, x, y };
    if (i % 2 === 1) y += 8;
    return {
      id: i + 1,
      type: panel.kind ?? "timeseries",
      title: panel.title,
      ...(panel.description ? { description: panel.description } : {}),
      datasource,
      gridPos,
      fieldConfig: { defaults: { ...(panel.unit ? { unit: panel.unit } : {}) }, overrides: [] },
      options: stat
        ? { reduceOptions: { calcs: ["lastNotNull"] } }
        : { legend: { displayMode: "list" } },
      targets: panel.queries.map((t, j) => ({
        refId: String.fromCharCode(65 + j),
        datasource,
        expr: t.expr,
        legendFormat: t.legend,
      })),
    };
  });
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ["agentmesh"],
    timezone: "utc",
    schemaVersion: 39,
    version: 1,
    editable: true,
    refresh: "30s",
    time: { from: "now-6h", to: "now" },
    templating: {
      list: [
        { name: "datasource", label: "Prometheus", type: "datasource", query: "prometheus" },
        ...(spec.variables ?? []).map((v) => ({
          name: v.name,
          label: v.name,
          type: "query",
          datasource,
          query: `label_values(${v.metric}, ${v.label})`,
          refresh: 2,
        })),
      ],
    },
    panels,
  };
}
