/**
 * What the stores of this process sent PostgreSQL, for Prometheus and for
 * `bench goals` (statements per goal). Counted as plain numbers on the hot
 * path and read at scrape time.
 *
 * | metric | what |
 * | --- | --- |
 * | `agentmesh_store_statements_total` | statements sent, `BEGIN` and `COMMIT`/`ROLLBACK` included |
 * | `agentmesh_store_transactions_total` | explicit transactions |
 * | `agentmesh_store_up` | 1 while the store serves (PostgreSQL answers), 0 otherwise |
 *
 * @example
 * storeMetrics(meshMetrics().registry);
 * const before = storeCounts.statements;
 */
import { Counter, Gauge, type Registry } from "prom-client";

/** Totals since the process started, over every store it opened. */
export const storeCounts = { statements: 0, transactions: 0 };

const registered = new WeakSet<Registry>();

/** Registers the store's counters in `registry` (once per registry). */
export function storeMetrics(registry: Registry): void {
  if (registered.has(registry)) return;
  registered.add(registry);
  new Counter({
    name: "agentmesh_store_statements_total",
    help: "SQL statements sent to PostgreSQL, BEGIN and COMMIT included.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(storeCounts.statements);
    },
  });
  new Counter({
    name: "agentmesh_store_transactions_total",
    help: "Explicit transactions run against PostgreSQL.",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(storeCounts.transactions);
    },
  });
}

/** `agentmesh_store_up` in `registry`: whether `serving()` holds at scrape time (once per registry). */
export function storeUpMetric(registry: Registry, serving: () => boolean): void {
  if (registry.getSingleMetric("agentmesh_store_up")) return;
  new Gauge({
    name: "agentmesh_store_up",
    help: "1 while this process's store serves (PostgreSQL answers its health probe), 0 otherwise.",
    registers: [registry],
    collect() {
      this.set(serving() ? 1 : 0);
    },
  });
}
