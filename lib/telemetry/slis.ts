/**
 * The service level indicators of the mesh, per tenant (bounded by
 * `label-guard.ts`) and goal kind or capability:
 *
 * | metric | labels | recorded by | what |
 * | --- | --- | --- | --- |
 * | `agentmesh_goals_finished_total` | tenant, kind, status | executor | goals that reached `succeeded`, `failed` or `cancelled` |
 * | `agentmesh_goal_duration_seconds` | tenant, kind | executor | submission to the final status (exemplar: the goal's trace id) |
 * | `agentmesh_job_queue_wait_seconds` | tenant, capability | agent | job dispatched to job taken by an agent (exemplar: trace id) |
 * | `agentmesh_step_duration_seconds` | tenant, capability | agent | a job's run in the agent, taken to reported (exemplar: trace id) |
 * | `agentmesh_agent_jobs_total` | capability, outcome | agent | jobs an agent settled: `succeeded`, `failed`, `cancelled`, `refused`, `handed_back` |
 *
 * @example
 * const goals = goalSli(registry);
 * goals.finished({ tenantId: "acme", kind: "echo", status: "succeeded", seconds: 0.3, traceId });
 */
import { Counter, type Histogram, type Registry } from "prom-client";
import { exemplarHistogram, observeWithTrace } from "./exemplar-histogram.js";
import { boundedLabel, tenantLabel } from "./label-guard.js";

export type GoalEnd = "succeeded" | "failed" | "cancelled";
export type JobOutcome = "succeeded" | "failed" | "cancelled" | "refused" | "handed_back";

/** Goal kinds a process labels by name before folding the rest into `other`. */
export const maxGoalKindLabels = 200;

export const goalBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const jobBuckets = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
];

export interface GoalSli {
  finished(goal: {
    tenantId: string;
    kind: string;
    status: GoalEnd;
    seconds: number;
    traceId?: string | undefined;
  }): void;
}

export interface JobSli {
  /** A job taken off the queue `waitSeconds` after it was dispatched. */
  taken(job: {
    tenantId: string;
    capability: string;
    waitSeconds: number;
    traceId?: string | undefined;
  }): void;
  /** A job settled by the agent after running `seconds`. */
  settled(job: {
    tenantId: string;
    capability: string;
    outcome: JobOutcome;
    seconds: number;
    traceId?: string | undefined;
  }): void;
}

export interface SliOptions {
  /** Tenants labelled by name; default `AGENTMESH_METRICS_TENANTS`. */
  tenants?: readonly string[];
}

const goalSlis = new WeakMap<Registry, GoalSli>();
const jobSlis = new WeakMap<Registry, JobSli>();

/** The goal SLIs in `registry` (one set per registry). */
export function goalSli(registry: Registry, options: SliOptions = {}): GoalSli {
  const existing = goalSlis.get(registry);
  if (existing) return existing;
  const tenant = tenantLabel(options.tenants);
  const kind = boundedLabel(maxGoalKindLabels);
  const finished = counter(registry, {
    name: "agentmesh_goals_finished_total",
    help: "Goals that reached a final status, by tenant, goal kind and status (succeeded, failed, cancelled).",
    labelNames: ["tenant", "kind", "status"] as const,
  });
  const duration = exemplarHistogram(registry, {
    name: "agentmesh_goal_duration_seconds",
    help: "Seconds from a goal's submission to its final status, by tenant and goal kind.",
    labelNames: ["tenant", "kind"] as const,
    buckets: goalBuckets,
  });
  const sli: GoalSli = {
    finished(g) {
      const labels = { tenant: tenant(g.tenantId), kind: kind(g.kind) };
      finished.inc({ ...labels, status: g.status });
      observeWithTrace(duration, labels, Math.max(0, g.seconds), g.traceId);
    },
  };
  goalSlis.set(registry, sli);
  return sli;
}

/** The job SLIs an agent process records in `registry` (one set per registry). */
export function jobSli(registry: Registry, options: SliOptions = {}): JobSli {
  const existing = jobSlis.get(registry);
  if (existing) return existing;
  const tenant = tenantLabel(options.tenants);
  const wait: Histogram<"tenant" | "capability"> = exemplarHistogram(registry, {
    name: "agentmesh_job_queue_wait_seconds",
    help: "Seconds from a job's dispatch by the executor to an agent taking it, by tenant and capability.",
    labelNames: ["tenant", "capability"] as const,
    buckets: jobBuckets,
  });
  const run = exemplarHistogram(registry, {
    name: "agentmesh_step_duration_seconds",
    help: "Seconds an agent spent on a job, from taking it to reporting its result, by tenant and capability.",
    labelNames: ["tenant", "capability"] as const,
    buckets: jobBuckets,
  });
  const jobs = counter(registry, {
    name: "agentmesh_agent_jobs_total",
    help: "Jobs an agent settled, by capability and outcome (succeeded, failed, cancelled, refused, handed_back).",
    labelNames: ["capability", "outcome"] as const,
  });
  const sli: JobSli = {
    taken(j) {
      const labels = { tenant: tenant(j.tenantId), capability: j.capability };
      observeWithTrace(wait, labels, Math.max(0, j.waitSeconds), j.traceId);
    },
    settled(j) {
      jobs.inc({ capability: j.capability, outcome: j.outcome });
      if (j.outcome === "handed_back") return; // not a finished run
      const labels = { tenant: tenant(j.tenantId), capability: j.capability };
      observeWithTrace(run, labels, Math.max(0, j.seconds), j.traceId);
    },
  };
  jobSlis.set(registry, sli);
  return sli;
}

/** The counter registered in `registry` under `name`, created on first use. */
function counter<L extends string>(
  registry: Registry,
  options: { name: string; help: string; labelNames: readonly L[] },
): Counter<L> {
  const existing = registry.getSingleMetric(options.name);
  if (existing) return existing as Counter<L>;
  return new Counter<L>({ ...options, registers: [registry] });
}
