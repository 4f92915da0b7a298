/**
 * Retention: a tenant with `retention_days` keeps its finished goals that
 * long; older ones are purged with their plans, steps, attempts and events
 * (cascades) and their experiences, in batches so no statement holds many
 * rows, by every process that owns a store (`for update skip locked` keeps
 * replicas from purging the same rows). The audit log is kept whole.
 *
 * @example
 * const purge = startRetention({ store, intervalMs: 3_600_000, batch: 500, registry });
 * await purge.runOnce(); // { goals: 120, experiences: 118 }
 * await purge.close();
 */
import { Counter, type Registry } from "prom-client";
import type { Logger } from "../log/logger.js";
import { adminActionEvent } from "./audit-log.js";
import type { Store } from "./store.js";

export interface RetentionOptions {
  store: Store;
  /** How often to purge. Default 1 h. */
  intervalMs?: number;
  /** Goals deleted per statement. Default 500. */
  batch?: number;
  registry?: Registry;
  log?: Logger;
  /** Runs before each scheduled purge (the region check). */
  beforeRun?: () => Promise<void>;
}

export interface RetentionRun {
  goals: number;
  experiences: number;
  batches: number;
}

export interface Retention {
  /** One purge of every tenant with a retention period; what it deleted. */
  runOnce(now?: Date): Promise<RetentionRun>;
  close(): Promise<void>;
}

const purgedCounters = new WeakMap<Registry, Counter<"kind">>();

function purgedCounter(registry: Registry): Counter<"kind"> {
  let c = purgedCounters.get(registry);
  if (!c) {
    c = new Counter({
      name: "agentmesh_retention_purged_total",
      help: "Rows purged past their tenant's retention period, by kind (goals with their plans, steps and events; experiences).",
      labelNames: ["kind"],
      registers: [registry],
    });
    purgedCounters.set(registry, c);
  }
  return c;
}

export function startRetention(options: RetentionOptions): Retention {
  const { store } = options;
  const batch = options.batch ?? 500;
  const counter = options.registry ? purgedCounter(options.registry) : undefined;
  let running: Promise<RetentionRun> | undefined;
  const runOnce = (now = new Date()) => {
    running ??= (async () => {
      const total: RetentionRun = { goals: 0, experiences: 0, batches: 0 };
      try {
        for (const { id, retentionDays } of await store.tenants.withRetention()) {
          const before = new Date(now.getTime() - retentionDays * 86_400_000);
          for (;;) {
            const n = await store.tenants.purgeGoals(id, before, batch);
            total.goals += n;
            total.batches++;
            counter?.inc({ kind: "goals" }, n);
            // Not `n < batch`: parents become purgeable once a batch took their sub-goals.
            if (n === 0) break;
          }
          for (;;) {
            const n = await store.tenants.purgeExperiences(id, before, batch);
            total.experiences += n;
            total.batches++;
            counter?.inc({ kind: "experiences" }, n);
            if (n < batch) break;
          }
        }
        return total;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const timer = setInterval(() => {
    (async () => {
      await options.beforeRun?.();
      const run = await runOnce();
      if (run.goals + run.experiences > 0) options.log?.info(run, "purged past retention");
    })().catch((err: unknown) => options.log?.warn({ err }, "retention purge failed"));
  }, options.intervalMs ?? 3_600_000);
  timer.unref();
  return {
    runOnce,
    async close() {
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}

/** Sets a tenant's retention and region, audited. */
export async function setTenantRetention(
  store: Store,
  tenantId: string,
  change: { days?: number | null; region?: string | null },
  actor: string,
): Promise<void> {
  await store.tenants.setRetention(tenantId, change);
  await store.audit.append(
    adminActionEvent({
      actor,
      what: "tenant.retention_set",
      resource: `tenant/${tenantId}`,
      tenantId,
      details: {
        ...(change.days !== undefined ? { retentionDays: change.days } : {}),
        ...(change.region !== undefined ? { region: change.region } : {}),
      },
    }),
  );
}
