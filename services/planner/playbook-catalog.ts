/**
 * The playbooks a tenant sees: the built-in files (global, loaded once) and
 * the tenant's own from the store, a tenant's playbook hiding a global one of
 * the same goal kind. `get` (the planning path) reads the tenant's playbook on
 * every call (one indexed row), so a PutPlaybook on one replica plans on every
 * other at once. `list` (ListPlaybooks, a hot read for dashboards and SDKs)
 * reuses a tenant's list for `listCacheMs` (then answers from it once more
 * while re-reading it): a write through this replica is seen at once
 * (`forget`), one through another replica within that time and a read.
 *
 * @example
 * const catalog = createPlaybookCatalog({ store });
 * const playbook = await catalog.get("acme", "summarize"); // NOT_FOUND when neither exists
 */
import { fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { type Playbook, PlaybookSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { PlaybookRecord, Store } from "../../lib/store/index.js";
import { builtinPlaybookDir, loadPlaybookDir } from "./domain/index.js";

export interface PlaybookCatalogOptions {
  store: Store;
  /** Folder of the global playbook files; default the built-in `playbooks/`. */
  playbookDir?: string;
  /** How long `list` reuses a tenant's list. Default 1000 ms; 0 reads the store every time. */
  listCacheMs?: number;
  /** Milliseconds now; default `Date.now`. */
  clock?: () => number;
}

export interface PlaybookCatalog {
  /** Loads the global playbook files (INVALID_ARGUMENT listing every broken file). */
  load(): Promise<void>;
  /** The global playbooks by goal kind. */
  globals(): Promise<ReadonlyMap<string, Playbook>>;
  /** The playbook the tenant sees for a kind, or NOT_FOUND. */
  get(tenantId: string, goalKind: string): Promise<Playbook>;
  /** Every playbook the tenant sees, by goal kind (the same array while cached: do not modify). */
  list(tenantId: string): Promise<Playbook[]>;
  /** Drops the cached list of a tenant (after this replica changed one of its playbooks). */
  forget(tenantId: string): void;
}

export function createPlaybookCatalog(options: PlaybookCatalogOptions): PlaybookCatalog {
  const { store } = options;
  const listCacheMs = options.listCacheMs ?? 1000;
  const clock = options.clock ?? Date.now;
  const lists = new Map<
    string,
    { until: number; playbooks: Promise<Playbook[]>; refreshing: boolean }
  >();
  let loaded: Promise<ReadonlyMap<string, Playbook>> | undefined;
  const globals = () => {
    loaded ??= loadPlaybookDir(options.playbookDir ?? builtinPlaybookDir).then(
      (list) => new Map(list.map((p) => [p.goalKind, p])),
      (err: unknown) => {
        loaded = undefined;
        throw err;
      },
    );
    return loaded;
  };
  return {
    async load() {
      await globals();
    },
    globals,
    async get(tenantId, goalKind) {
      if (!goalKind) throw new MeshError(Code.InvalidArgument, "goal_kind is required");
      if (tenantId) {
        const own = await store.tenant(tenantId).playbooks.find(goalKind);
        if (own) return playbookFromRecord(own);
      }
      const global = (await globals()).get(goalKind);
      if (!global) throw new MeshError(Code.NotFound, `no playbook for goal kind "${goalKind}"`);
      return global;
    },
    list(tenantId) {
      const now = clock();
      const hit = lists.get(tenantId);
      if (hit && (hit.until > now || hit.refreshing)) return hit.playbooks;
      if (hit) {
        // Stale: answered from the old list while one read replaces it (so no call waits on
        // the store); a failed read drops it. A forget() meanwhile wins over the read.
        hit.refreshing = true;
        readList(tenantId).then(
          (list) => {
            if (lists.get(tenantId) !== hit) return;
            const until = clock() + listCacheMs;
            lists.set(tenantId, { until, playbooks: Promise.resolve(list), refreshing: false });
          },
          () => lists.get(tenantId) === hit && lists.delete(tenantId),
        );
        return hit.playbooks;
      }
      const playbooks = readList(tenantId);
      if (listCacheMs > 0) {
        // Concurrent callers share one read; a failed read is not kept.
        const entry = { until: now + listCacheMs, playbooks, refreshing: false };
        lists.set(tenantId, entry);
        playbooks.catch(() => lists.get(tenantId) === entry && lists.delete(tenantId));
      }
      return playbooks;
    },
    forget(tenantId) {
      lists.delete(tenantId);
    },
  };

  async function readList(tenantId: string): Promise<Playbook[]> {
    const byKind = new Map(await globals());
    if (tenantId) {
      for (const r of await store.tenant(tenantId).playbooks.list()) {
        byKind.set(r.goalKind, playbookFromRecord(r));
      }
    }
    return [...byKind.values()].sort((a, b) => a.goalKind.localeCompare(b.goalKind));
  }
}

/** A stored tenant playbook as the message (tenant and version from the row). */
export function playbookFromRecord(record: PlaybookRecord): Playbook {
  const playbook = fromJson(PlaybookSchema, record.playbook, { ignoreUnknownFields: true });
  playbook.tenantId = record.tenantId;
  playbook.goalKind = record.goalKind;
  playbook.version = record.version;
  return playbook;
}

/** A playbook as the JSON the store keeps. */
export function playbookToJson(playbook: Playbook): JsonObject {
  return toJson(PlaybookSchema, playbook) as JsonObject;
}
