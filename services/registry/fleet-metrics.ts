/**
 * `agentmesh_registry_live_agents{capability}`: the live agents (LIVE, lease
 * not expired) offering each capability, read from the store at scrape time.
 * Every registry replica reports the whole mesh's figure, so dashboards and
 * alerts take `max` over replicas.
 *
 * @example
 * fleetMetrics(runtime.metrics.registry, store);
 */
import { Gauge, type Registry } from "prom-client";
import type { Store } from "../../lib/store/store.js";

export function fleetMetrics(registry: Registry, store: Store): void {
  if (registry.getSingleMetric("agentmesh_registry_live_agents")) return;
  new Gauge({
    name: "agentmesh_registry_live_agents",
    help: "Live agents (lease held) offering each capability, across the mesh.",
    labelNames: ["capability"],
    registers: [registry],
    async collect() {
      // The database away: no figure rather than a false zero (agentmesh_store_up says why).
      const counts = await store.agents.countLive().catch(() => undefined);
      if (counts === undefined) return;
      this.reset();
      for (const [capability, n] of counts) this.set({ capability }, n);
    },
  });
}
