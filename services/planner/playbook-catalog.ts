/**
 * The playbooks a tenant sees: the built-in files (global, loaded once) and
 * the tenant's own from the store, a tenant's playbook hiding a global one of
 * the same goal kind.
 *
 * `get` (the planning path, once per goal) keeps what it read per tenant and
 * goal kind while `changes` (the store's `agentmesh_playbooks` channel, which
 * a trigger notifies on every write to a tenant's playbooks, migration 0013)
 * is listening, and drops a tenant's on its notification. Before using what
 * it keeps it makes one round trip on the listening connection (`sync`,
 * shared by the calls waiting at the same time): every notification
 * committed before the call has arrived by then, so a PutPlaybook answered by
 * any replica (the planner's, or the executor's reading its own catalog,
 * ADR-017) is what the next goal plans with. While the channel is not
 * listening (no `changes`, or its connection lost) `get` reads the row on
 * every call, and the channel's `resync` drops everything kept.
 *
 * `list` (ListPlaybooks, a hot read for dashboards and SDKs) keeps a
 * tenant's list until a notification drops it; while the channel is not
 * listening, for `listCacheMs` (then answers from it once more while
 * re-reading it): a write through this replica is seen at once (`forget`),
 * one through another replica on its notification or within that time.
 *
 * @example
 * const catalog = createPlaybookCatalog({ store });
 * const playbook = await catalog.get("acme", "summarize"); // NOT_FOUND when neither exists
 */
import { fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import { type Playbook, PlaybookSchema } from "../../gen/agentmesh/v1/planner_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { NotifyChannel, PlaybookRecord, Store } from "../../lib/store/index.js";
import { builtinPlaybookDir, loadPlaybookDir } from "./domain/index.js";

export interface PlaybookCatalogOptions {
  store: Store;
  /** Folder of the global playbook files; default the built-in `playbooks/`. */
  playbookDir?: string;
  /** How long `list` reuses a tenant's list. Default 1000 ms; 0 reads the store every time. */
  listCacheMs?: number;
  /** Milliseconds now; default `Date.now`. */
  clock?: () => number;
  /** The playbooks' change channel (started by the caller); without it `get` reads every time. */
  changes?: NotifyChannel;
}

export interface PlaybookCatalog {
  /** Loads the global playbook files (INVALID_ARGUMENT listing every broken file). */
  load(): Promise<void>;
  /** The global playbooks by goal kind. */
  globals(): Promise<ReadonlyMap<string, Playbook>>;
  /** The playbook the tenant sees for a kind, or NOT_FOUND (kept: do not modify). */
  get(tenantId: string, goalKind: string): Promise<Playbook>;
  /** The playbook the tenant sees for a kind, or undefined (kept: do not modify). */
  find(tenantId: string, goalKind: string): Promise<Playbook | undefined>;
  /** Every playbook the tenant sees, by goal kind (the same array while cached: do not modify). */
  list(tenantId: string): Promise<Playbook[]>;
  /** Drops what is kept of a tenant (after this replica changed one of its playbooks). */
  forget(tenantId: string): void;
}

/** Tenant playbooks (or their absence) `get` keeps at most. */
const maxOwned = 10_000;

export function createPlaybookCatalog(options: PlaybookCatalogOptions): PlaybookCatalog {
  const { store } = options;
  const listCacheMs = options.listCacheMs ?? 1000;
  const clock = options.clock ?? Date.now;
  const lists = new Map<
    string,
    { until: number; playbooks: Promise<Playbook[]>; refreshing: boolean }
  >();
  /** Per tenant, per goal kind: the tenant's own playbook as read (undefined: none). */
  const owned = new Map<string, Map<string, Promise<Playbook | undefined>>>();
  let ownedCount = 0;
  const dropOwned = (tenantId?: string) => {
    if (tenantId === undefined) {
      owned.clear();
      ownedCount = 0;
    } else {
      ownedCount -= owned.get(tenantId)?.size ?? 0;
      owned.delete(tenantId);
    }
  };
  options.changes?.subscribe((event) => {
    if (event.type === "notification" && event.payload !== "*") {
      dropOwned(event.payload);
      lists.delete(event.payload);
    } else {
      dropOwned();
      lists.clear();
    }
  });
  const readOwn = async (tenantId: string, goalKind: string) => {
    const own = await store.tenant(tenantId).playbooks.find(goalKind);
    return own ? playbookFromRecord(own) : undefined;
  };
  /**
   * The tenant's own playbook: kept while the change channel listens, else read.
   * What is kept is used once the channel's round trip is back, so every change
   * committed before the call (a PutPlaybook answered on any replica) has dropped it.
   */
  const ownPlaybook = async (tenantId: string, goalKind: string): Promise<Playbook | undefined> => {
    const changes = options.changes;
    if (!changes?.listening()) return readOwn(tenantId, goalKind);
    try {
      await changes.sync();
    } catch {
      return readOwn(tenantId, goalKind);
    }
    let kinds = owned.get(tenantId);
    const hit = kinds?.get(goalKind);
    if (hit) return hit;
    // Bounded: goal kinds come from requests; past the bound, start over.
    if (ownedCount >= maxOwned) dropOwned();
    if (!owned.has(tenantId)) owned.set(tenantId, new Map());
    kinds = owned.get(tenantId)!;
    // Kept as the read in flight, so a notification during the read drops it too.
    const read = readOwn(tenantId, goalKind);
    kinds.set(goalKind, read);
    ownedCount++;
    const entries = kinds;
    read.catch(() => {
      if (entries.get(goalKind) === read) {
        entries.delete(goalKind);
        ownedCount--;
      }
    });
    return read;
  };
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
  async function find(tenantId: string, goalKind: string): Promise<Playbook | undefined> {
    if (!goalKind) throw new MeshError(Code.InvalidArgument, "goal_kind is required");
    if (tenantId) {
      const own = await ownPlaybook(tenantId, goalKind);
      if (own) return own;
    }
    return (await globals()).get(goalKind);
  }
  return {
    async load() {
      await globals();
    },
    globals,
    async get(tenantId, goalKind) {
      const playbook = await find(tenantId, goalKind);
      if (!playbook) throw noPlaybook(goalKind);
      return playbook;
    },
    find,
    list(tenantId) {
      const now = clock();
      const hit = lists.get(tenantId);
      // While the channel listens a change drops the list: nothing to age out (a re-read
      // every listCacheMs rebuilt the list, its redacted copies and their encoding).
      if (hit && (hit.until > now || hit.refreshing || options.changes?.listening())) {
        return hit.playbooks;
      }
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
      dropOwned(tenantId);
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

/** The NOT_FOUND of a goal kind no playbook the tenant sees has. */
export function noPlaybook(goalKind: string): MeshError {
  return new MeshError(Code.NotFound, `no playbook for goal kind "${goalKind}"`);
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
