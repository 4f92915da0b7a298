/**
 * Gathers agents' results that arrive together (one socket read of the
 * consumer usually carries several) so they share one load of the goals this
 * replica does not remember (three statements for all of them). Their
 * transitions are then saved together by the engine's group commit (one
 * statement, each goal under its own optimistic lock): a goal another replica
 * moved on (ABORTED) starts over alone from a fresh load while the others are
 * saved.
 *
 * @example
 * const batcher = new ResultBatcher({ applyOne, recall, loadGoals, stats });
 * await batcher.add(result); // settles when this result's transition is saved (or failed)
 */
import type { StepResult } from "../../gen/agentmesh/v1/jobs_pb.js";
import type { LoadedGoal } from "./goal-store.js";

export interface ResultBatcherDeps {
  /** Applies one result, starting from `known` (or whatever the engine remembers). */
  applyOne(result: StepResult, known?: LoadedGoal): Promise<void>;
  /** The goal as this replica last saved it, if remembered. */
  recall(tenantId: string, goalId: string): LoadedGoal | undefined;
  /** Loads several goals of one tenant at once. */
  loadGoals(tenantId: string, goalIds: string[]): Promise<Map<string, LoadedGoal>>;
  /** Counts batches of more than one result. */
  stats: { resultBatches: number };
}

/** A result waiting to be applied, and its delivery's settlement. */
interface PendingResult {
  result: StepResult;
  resolve(): void;
  reject(err: unknown): void;
}

export class ResultBatcher {
  readonly #deps: ResultBatcherDeps;
  #pending: PendingResult[] = [];

  constructor(deps: ResultBatcherDeps) {
    this.#deps = deps;
  }

  /** Queues a result for the batch of this turn of the event loop. */
  add(result: StepResult): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) setImmediate(() => this.#flush());
      this.#pending.push({ result, resolve, reject });
    });
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    const byTenant = new Map<string, PendingResult[]>();
    const again: PendingResult[] = [];
    const seen = new Set<string>();
    for (const p of batch) {
      // A goal's second result in one batch waits for the first: applied on its own after.
      const key = `${p.result.tenantId}/${p.result.goalId}`;
      if (seen.has(key)) {
        again.push(p);
        continue;
      }
      seen.add(key);
      const list = byTenant.get(p.result.tenantId);
      if (list) list.push(p);
      else byTenant.set(p.result.tenantId, [p]);
    }
    for (const [tenantId, items] of byTenant) {
      const later = again.filter((a) => a.result.tenantId === tenantId);
      void this.#applyBatch(tenantId, items)
        // Unexpected (a bug): settle every delivery so none waits forever; settled ones ignore it.
        .catch((err: unknown) => {
          for (const p of items) p.reject(err);
        })
        .then(async () => {
          for (const p of later) await this.#applyOne(p);
        });
    }
  }

  async #applyOne(p: PendingResult, known?: LoadedGoal): Promise<void> {
    try {
      await this.#deps.applyOne(p.result, known);
      p.resolve();
    } catch (err) {
      p.reject(err);
    }
  }

  async #applyBatch(tenantId: string, items: PendingResult[]): Promise<void> {
    if (items.length === 1) return this.#applyOne(items[0]!);
    this.#deps.stats.resultBatches++;
    const unknown = items
      .map((p) => p.result.goalId)
      .filter((id) => this.#deps.recall(tenantId, id) === undefined);
    let loaded = new Map<string, LoadedGoal>();
    if (unknown.length > 1) {
      try {
        loaded = await this.#deps.loadGoals(tenantId, unknown);
      } catch {
        // Each result loads its goal on its own.
      }
    }
    await Promise.all(items.map((p) => this.#applyOne(p, loaded.get(p.result.goalId))));
  }
}
