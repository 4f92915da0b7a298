/**
 * The store: MikroORM on PostgreSQL behind repositories per aggregate.
 *
 * Tenant data is reachable only through `store.tenant(id)`, whose
 * repositories bind every query to that tenant, so service code cannot
 * express an unscoped query for tenant data. Platform-level state (tenants
 * themselves, agents, learning statistics, flags, the audit log, and the
 * cross-tenant work queue) hangs off the store directly.
 *
 * Without `databaseUrl` (and without `DATABASE_URL`) the store starts an
 * embedded PostgreSQL under `<home>/data` (see `embedded-postgres.ts`).
 *
 * @example
 * const store = await openStore(); // migrates, DATABASE_URL or embedded
 * const acme = store.tenant("acme");
 * const { goal } = await acme.goals.create({ kind: "summarize", input: { text } });
 * await store.transaction(async (tx) => {
 *   const g = await tx.tenant("acme").goals.update(goal.id, goal.version, { status: "PLANNING" });
 *   await tx.tenant("acme").events.append(g.id, { type: "planning", data: {} });
 * });
 * await store.close();
 */
import { join } from "node:path";
import type { Transaction } from "@mikro-orm/core";
import { MikroORM, type Options } from "@mikro-orm/postgresql";
import { loadConfig } from "../config/config.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import { processSecrets } from "../secrets/open-secrets.js";
import type { SecretStore } from "../secrets/secret-store.js";
import { meshMetrics } from "../telemetry/metrics.js";
import { AgentRepository } from "./agent-repository.js";
import { ApiKeyRepository } from "./api-key-repository.js";
import { AuditLog } from "./audit-log.js";
import { Db } from "./db.js";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "./embedded-postgres.js";
import { entities } from "./entities.js";
import { ExperienceRepository } from "./experience-repository.js";
import { FeatureFlagRepository } from "./feature-flag-repository.js";
import { GoalEventRepository } from "./goal-event-repository.js";
import {
  createGoals,
  type GoalCreated,
  type GoalCreation,
  GoalRepository,
  type GoalUpdate,
  updateGoals,
} from "./goal-repository.js";
import { LearningRepository } from "./learning-repository.js";
import { loadMigrations, migrationNames } from "./migrations/index.js";
import { createNotifyChannel } from "./notify-channel.js";
import { PayloadCipher } from "./payload-cipher.js";
import { PlanRepository } from "./plan-repository.js";
import { PlaybookRepository } from "./playbook-repository.js";
import { RateBucketRepository } from "./rate-bucket-repository.js";
import type { GoalRecord } from "./records.js";
import { HealthTracker, type StoreHealth } from "./store-health.js";
import { storeMetrics } from "./store-metrics.js";
import { StreamLeaseRepository } from "./stream-lease-repository.js";
import { TenantKeyFeed } from "./tenant-key-feed.js";
import { checkTenantId, TenantRepository } from "./tenant-repository.js";
import { WorkQueue } from "./work-queue.js";

export interface OpenStoreOptions {
  /**
   * PostgreSQL connection string. Default: `DATABASE_URL`; when that is unset
   * too, an embedded PostgreSQL under `<home>/data`.
   */
  databaseUrl?: string;
  /** Where the `database-url` secret is read when `databaseUrl` is not given. Default: the process's (`processSecrets()`). */
  secrets?: SecretStore;
  /** Use the embedded PostgreSQL even if `DATABASE_URL` is set. Default false. */
  embedded?: boolean;
  /** State directory for the embedded PostgreSQL. Default: `AGENTMESH_HOME` (`.agentmesh`). */
  home?: string;
  /**
   * PostgreSQL schema holding every table (created by the migrations if
   * missing). Default `public`. Tests use one schema per file.
   */
  schema?: string;
  /** Apply pending migrations before returning. Default true. */
  migrate?: boolean;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  /** How long a call waits to connect before failing with UNAVAILABLE. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Server-side limit on one statement (then DEADLINE_EXCEEDED). Default 30000 ms. */
  statementTimeoutMs?: number;
  /** How often a not-serving store probes the database. Default 1000 ms. */
  healthProbeMs?: number;
  /** `application_name` of the connections, as `pg_stat_activity` shows it. Default `agentmesh`. */
  applicationName?: string;
  /**
   * Send statements outside transactions as named prepared statements, so
   * PostgreSQL plans each text once per connection. Default true; false for a
   * connection pooler in transaction mode, which cannot keep them.
   */
  preparedStatements?: boolean;
  /** Logger for migrations and the embedded server. Default: silent. */
  logger?: Logger;
}

/** Repositories of one tenant's data; every query they run is bound to `tenantId`. */
export interface TenantStore {
  readonly tenantId: string;
  readonly goals: GoalRepository;
  readonly events: GoalEventRepository;
  readonly plans: PlanRepository;
  readonly playbooks: PlaybookRepository;
  readonly experiences: ExperienceRepository;
  readonly apiKeys: ApiKeyRepository;
}

/** What a transaction callback gets: the same repositories, all in one transaction. */
export interface StoreTransaction {
  tenant(tenantId: string): TenantStore;
  readonly tenants: TenantRepository;
  readonly agents: AgentRepository;
  readonly work: WorkQueue;
  readonly learning: LearningRepository;
  readonly flags: FeatureFlagRepository;
  readonly audit: AuditLog;
  readonly buckets: RateBucketRepository;
  readonly streams: StreamLeaseRepository;
  /**
   * Creates goals of any tenants (each from `tenant(t).goals.prepare`) in one
   * statement; each goal's outcome, or its own error, at its index.
   */
  createGoals(creations: readonly GoalCreation[]): Promise<(GoalCreated | MeshError)[]>;
  /**
   * Updates goals of any tenants (each from `tenant(t).goals.prepareUpdate`)
   * in one statement; each goal as now stored, or its own error (ABORTED
   * when it or one of its steps moved on), at its index.
   */
  updateGoals(updates: readonly GoalUpdate[]): Promise<(GoalRecord | MeshError)[]>;
}

/** What `Store.watchTenantKeys` tells. */
export interface TenantKeyWatcher {
  onChange(tenantId: string): void;
  onGap(): void;
}

export interface MigrationStatus {
  executed: string[];
  pending: string[];
}

/** Opens a store and (by default) migrates it. Fails with UNAVAILABLE if the database cannot be reached. */
export async function openStore(options: OpenStoreOptions = {}): Promise<Store> {
  const schema = options.schema;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new MeshError(Code.InvalidArgument, `invalid schema name ${JSON.stringify(schema)}`);
  }
  const config = loadConfig();
  let url = options.embedded
    ? undefined
    : (options.databaseUrl ??
      (await (options.secrets ?? (await processSecrets())).get("database-url")));
  let embedded: EmbeddedPostgres | undefined;
  if (!url) {
    embedded = await startEmbeddedPostgres({
      dataDir: join(options.home ?? config.home, "data"),
      logger: options.logger,
    });
    url = embedded.url;
  }
  const store = new Store(ormOptions(url, options), embedded, options);
  try {
    if (options.migrate ?? true) await store.migrate();
    else await store.health.check();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

function ormOptions(url: string, options: OpenStoreOptions): Options {
  const connectTimeoutMs = options.connectTimeoutMs ?? 3000;
  const connection: Record<string, unknown> = {
    connectionTimeoutMillis: connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs ?? 30_000,
    keepAlive: true,
    application_name: options.applicationName ?? "agentmesh",
  };
  // search_path makes unqualified SQL (repositories, migrations) resolve in the schema.
  if (options.schema) connection.options = `-c search_path=${options.schema}`;
  return {
    clientUrl: url,
    entities,
    schema: options.schema,
    // The migrator is registered on first use (see Store.#migrator).
    migrations: {
      tableName: "mikro_orm_migrations",
      snapshot: false,
      silent: true,
      transactional: true,
      allOrNothing: true,
    },
    pool: {
      min: 0,
      max: options.poolSize ?? 10,
      acquireTimeoutMillis: connectTimeoutMs + 1000,
      idleTimeoutMillis: 30_000,
    },
    driverOptions: {
      connection,
      // knex would print connection errors (with SQL and values) to the console.
      log: {
        warn: (m: unknown) => options.logger?.debug({ knex: String(m) }, "database warning"),
        error: (m: unknown) => options.logger?.debug({ knex: String(m) }, "database error"),
        deprecate: () => undefined,
        debug: () => undefined,
      },
    },
    ensureDatabase: false,
    connect: false,
    debug: false,
    allowGlobalContext: false,
    metadataCache: { enabled: false },
    discovery: { disableDynamicFileAccess: true, warnWhenNoEntities: false },
    logger: () => undefined,
  };
}

export class Store implements StoreTransaction {
  /** The underlying ORM, for tooling; services use the repositories. */
  readonly orm: MikroORM;
  readonly health: StoreHealth;
  readonly tenants: TenantRepository;
  readonly agents: AgentRepository;
  readonly work: WorkQueue;
  readonly learning: LearningRepository;
  readonly flags: FeatureFlagRepository;
  readonly audit: AuditLog;
  readonly buckets: RateBucketRepository;
  readonly streams: StreamLeaseRepository;
  /** Envelope encryption of tenants' payloads (rotation, erasure). */
  readonly cipher: PayloadCipher;
  /** Where the data lives, with any password masked. */
  readonly location: string;
  readonly #db: Db;
  readonly #health: HealthTracker;
  readonly #embedded: EmbeddedPostgres | undefined;
  readonly #log: Logger | undefined;
  readonly #schema: string;
  readonly #keyFeed: TenantKeyFeed;
  readonly #keyWatchers = new Set<TenantKeyWatcher>();
  /** Tenants pinned to another region than this deployment's, and their region. */
  readonly #pinned = new Map<string, string>();
  #closed = false;

  /** @internal use `openStore()` */
  constructor(options: Options, embedded: EmbeddedPostgres | undefined, open: OpenStoreOptions) {
    this.orm = MikroORM.initSync(options);
    storeMetrics(meshMetrics().registry);
    this.#embedded = embedded;
    this.#log = open.logger;
    this.#schema = open.schema ?? "public";
    this.#health = new HealthTracker(async () => {
      await this.orm.em.fork().execute("select 1");
    }, open.healthProbeMs);
    this.health = this.#health;
    this.#db = new Db(this.orm, this.#health, undefined, open.preparedStatements ?? true);
    const secrets = open.secrets;
    this.#keyFeed = new TenantKeyFeed({
      channel: createNotifyChannel({
        store: this,
        name: "agentmesh_tenant_keys",
        log: open.logger ?? createLogger({ name: "store", level: "silent" }),
        outsidePool: true,
      }),
      onChange: (tenantId) => {
        this.cipher.forget(tenantId);
        for (const w of this.#keyWatchers) w.onChange(tenantId);
      },
      onGap: () => {
        this.cipher.forgetAll();
        for (const w of this.#keyWatchers) w.onGap();
      },
    });
    // Keys are asked for only when a tenant encrypts, so a store without secrets opens as before.
    this.cipher = new PayloadCipher(
      this.#db,
      async () => (secrets ?? (await processSecrets())).keys,
      this.#keyFeed,
    );
    const parts = bind(this.#db, this.cipher, this.#pinned);
    this.tenants = parts.tenants;
    this.agents = parts.agents;
    this.work = parts.work;
    this.learning = parts.learning;
    this.flags = parts.flags;
    this.audit = parts.audit;
    this.buckets = parts.buckets;
    this.streams = parts.streams;
    this.tenant = parts.tenant;
    this.createGoals = parts.createGoals;
    this.updateGoals = parts.updateGoals;
    const url = new URL(String(options.clientUrl));
    if (url.password) url.password = "*****";
    this.location = `${url.toString()}${open.schema ? ` (schema ${open.schema})` : ""}${embedded ? " [embedded]" : ""}`;
  }

  /**
   * The repositories of one tenant. INVALID_ARGUMENT if the id is missing or
   * malformed; an unknown tenant surfaces as NOT_FOUND from the first write.
   */
  readonly tenant: (tenantId: string) => TenantStore;

  readonly createGoals: StoreTransaction["createGoals"];

  readonly updateGoals: StoreTransaction["updateGoals"];

  /**
   * Runs `fn` in one transaction and commits when it resolves (rolls back
   * when it throws). Keep it short: it holds a connection and row locks.
   */
  transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return this.#db.transaction((db) => fn(bind(db, this.cipher, this.#pinned)));
  }

  /**
   * Applies pending migrations; returns the names applied. Replicas starting
   * together take turns on an advisory lock, so each migration runs once.
   */
  async migrate(): Promise<string[]> {
    if (await this.#upToDate()) return [];
    const migrator = await this.#migrator();
    const applied = await this.#underMigrationLock((transaction) => migrator.up({ transaction }));
    if (applied.length > 0) this.#log?.info({ applied: applied.map((m) => m.name) }, "migrated");
    return applied.map((m) => m.name);
  }

  /** Reverts migrations down to (not including) `to`, or all of them with 0 (the default). */
  async migrateDown(to: string | 0 = 0): Promise<string[]> {
    const migrator = await this.#migrator();
    const reverted = await this.#underMigrationLock((transaction) =>
      migrator.down({ to, transaction }),
    );
    return reverted.map((m) => m.name);
  }

  /** Which migrations ran and which are pending. */
  async migrationStatus(): Promise<MigrationStatus> {
    const migrator = await this.#migrator();
    return this.#db.run(async () => {
      // One after the other: each creates the migrations table if it is missing.
      const executed = await migrator.getExecutedMigrations();
      const pending = await migrator.getPendingMigrations();
      return { executed: executed.map((m) => m.name), pending: pending.map((m) => m.name) };
    });
  }

  /** True when every migration has run: one query, and no migrator to load for it. */
  async #upToDate(): Promise<boolean> {
    try {
      const rows = await this.#db.rows("select name from mikro_orm_migrations");
      const done = new Set(rows.map((r) => r.name));
      return migrationNames.every((name) => done.has(name));
    } catch {
      return false; // no migrations table yet; the migrator creates it
    }
  }

  #migratorLoad: Promise<ReturnType<MikroORM["getMigrator"]>> | undefined;
  /** MikroORM's migrator, loaded and registered on first use. */
  #migrator(): Promise<ReturnType<MikroORM["getMigrator"]>> {
    this.#migratorLoad ??= (async () => {
      const [{ Migrator }, migrationsList] = await Promise.all([
        import("@mikro-orm/migrations"),
        loadMigrations(),
      ]);
      this.orm.config.set("migrations", { ...this.orm.config.get("migrations"), migrationsList });
      Migrator.register(this.orm);
      return this.orm.getMigrator();
    })();
    return this.#migratorLoad;
  }

  async #underMigrationLock<T>(fn: (transaction: Transaction) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#db.run((em) =>
          em.transactional(async (tx) => {
            await tx.execute("select pg_advisory_xact_lock(hashtext(?))", [
              `agentmesh.migrate.${this.#schema}`,
            ]);
            return fn(tx.getTransactionContext() as Transaction);
          }),
        );
      } catch (err) {
        // MikroORM's introspection reads every schema's tables: one another
        // process drops meanwhile fails it (3F000). Nothing of ours changed: again.
        if (attempt >= 3 || !schemaVanished(err)) throw err;
      }
    }
  }

  /**
   * Refuses (FAILED_PRECONDITION) every tenant whose data is pinned to a
   * region other than `region`, from now on; returns them. Called at start
   * with `AGENTMESH_REGION`, and again by the retention job to see changes.
   */
  async enforceRegion(region: string): Promise<{ id: string; region: string }[]> {
    const elsewhere = await this.tenants.pinnedElsewhere(region);
    this.#pinned.clear();
    for (const t of elsewhere) this.#pinned.set(t.id, t.region);
    return elsewhere;
  }

  /** Closes the pool and, if this store started it, the embedded PostgreSQL. */
  /**
   * Follows changes of tenants' keys or encryption mode made by any process
   * (an erasure, a rotation): starts listening if the store was not yet;
   * `onGap` when changes may have been missed (the listening connection came
   * back). Returns the unsubscribe.
   */
  watchTenantKeys(watcher: TenantKeyWatcher): () => void {
    this.#keyWatchers.add(watcher);
    void this.#keyFeed.start();
    return () => this.#keyWatchers.delete(watcher);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#health.close();
    await this.#keyFeed.close();
    await this.orm.close(true).catch(() => undefined);
    await this.#embedded?.stop();
  }
}

function bind(
  db: Db,
  cipher: PayloadCipher,
  pinned: ReadonlyMap<string, string>,
): StoreTransaction {
  return {
    tenant: (tenantId: string): TenantStore => {
      const id = checkTenantId(tenantId);
      const region = pinned.get(id);
      if (region !== undefined) {
        throw new MeshError(
          Code.FailedPrecondition,
          `tenant ${id} is pinned to region ${region}: this deployment serves another region`,
        );
      }
      return {
        tenantId: id,
        goals: new GoalRepository(db, id, cipher),
        events: new GoalEventRepository(db, id, cipher),
        plans: new PlanRepository(db, id, cipher),
        playbooks: new PlaybookRepository(db, id),
        experiences: new ExperienceRepository(db, id, cipher),
        apiKeys: new ApiKeyRepository(db, id),
      };
    },
    tenants: new TenantRepository(db),
    agents: new AgentRepository(db),
    work: new WorkQueue(db, cipher),
    learning: new LearningRepository(db),
    flags: new FeatureFlagRepository(db),
    audit: new AuditLog(db),
    buckets: new RateBucketRepository(db),
    streams: new StreamLeaseRepository(db),
    createGoals: (creations) => createGoals(db, cipher, creations),
    updateGoals: (updates) => updateGoals(db, cipher, updates),
  };
}

/** A PostgreSQL "schema does not exist" (3F000) anywhere in the error's causes. */
function schemaVanished(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === "3F000") return true;
  }
  return false;
}
