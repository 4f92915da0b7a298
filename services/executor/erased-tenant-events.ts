/**
 * A tenant's erasure also takes its goals' events off the bus. The events
 * stream keeps them, data included, for a day (`eventsMaxAgeMs`), and
 * crypto-shredding promises that nothing of the tenant stays readable. Each
 * executor purges on the erasure's notification and, since one may have been
 * missed (the executor was down, or its listening connection away), purges
 * every erased tenant whenever it starts listening again: a purge that finds
 * nothing costs one request per erased tenant.
 *
 * @example
 * const stop = purgeErasedTenantEvents({ store, bus, log });
 */
import type { JobBus } from "../../lib/bus/job-bus.js";
import type { Logger } from "../../lib/log/logger.js";
import type { Store } from "../../lib/store/index.js";

export interface ErasedTenantEventsDeps {
  store: Store;
  bus: JobBus;
  log: Logger;
}

/** Starts following erasures; returns the stop. */
export function purgeErasedTenantEvents(deps: ErasedTenantEventsDeps): () => void {
  const { store, bus, log } = deps;
  const purge = async (tenantId: string) => {
    const purged = await bus.purgeGoalEvents(tenantId);
    if (purged > 0)
      log.info({ tenantId, purged }, "erased tenant's goal events purged from the bus");
  };
  const failed = (err: unknown) =>
    log.warn({ err }, "erased tenants' goal events not purged; tried again when next told");
  return store.watchTenantKeys({
    onChange(tenantId) {
      store.tenants
        .protection(tenantId)
        .then((p) => (p.erasedAt ? purge(tenantId) : undefined))
        .catch(failed);
    },
    onGap() {
      store.tenants
        .erased()
        .then(async (ids) => {
          for (const id of ids) await purge(id);
        })
        .catch(failed);
    },
  });
}
