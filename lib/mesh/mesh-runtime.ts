/**
 * What every mesh process shares between its components: configuration,
 * certificates, the policy engine and its authorizer, the store, the job bus,
 * metrics, and one HTTP endpoint (`/metrics`, `/healthz`, `/readyz`). The
 * embedded mode opens one runtime for all four services; `agentmesh serve`
 * opens one per process.
 *
 * @example
 * const runtime = await openMeshRuntime({ identities: ["executor"] });
 * const executor = await startComponent(executorComponent, { runtime });
 * // ...
 * await executor.stop();
 * await runtime.close();
 */
import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { Registry } from "prom-client";
import { ExecutorService } from "../../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { registerBusMetrics } from "../bus/bus-metrics.js";
import { busOptionsFromEnv, type ConnectBusOptions, connectBus } from "../bus/connect-bus.js";
import type { JobBus } from "../bus/job-bus.js";
import { isTlsUrl } from "../bus/nats-tls.js";
import { loadConfig, type MeshConfig } from "../config/config.js";
import { addrSettings, defaultMetricsPorts, settings } from "../config/settings.js";
import { Code, MeshError } from "../errors/mesh-error.js";
import { spiffeId } from "../identity/spiffe.js";
import { createLogger, type Logger } from "../log/logger.js";
import { createPolicyAuthorizer, createPolicyCheck } from "../policy/authorizer.js";
import { readRecordedInputs } from "../policy/corpus.js";
import { createDecisionLog, type DecisionLog } from "../policy/decision-log.js";
import { type EngineDecision, openPolicyEngine, type PolicyEngine } from "../policy/engine.js";
import type { PolicyInput } from "../policy/input.js";
import { createShadowLog } from "../policy/shadow-log.js";
import type { Authorizer } from "../rpc/authorizer.js";
import type { Client } from "../rpc/client.js";
import { openSecrets } from "../secrets/open-secrets.js";
import type { SecretStore } from "../secrets/secret-store.js";
import { startSiemExport, stopSiemExport } from "../siem/siem.js";
import { auditCheckpointSettings, startAuditCheckpoints } from "../store/audit-checkpoint.js";
import { startRetention } from "../store/retention.js";
import { type OpenStoreOptions, openStore, type Store } from "../store/store.js";
import { storeMetrics, storeUpMetric } from "../store/store-metrics.js";
import { createMeshMetrics, type MeshMetrics } from "../telemetry/metrics.js";
import { type CertWatcher, watchCertificates } from "../tls/cert-watcher.js";
import { certPaths, ensureIdentities } from "../tls/dev-ca.js";
import { type HealthHttpServer, serveHealthHttp } from "./health-http.js";
import { createLazyClient, type Endpoint, type LazyClient } from "./lazy-client.js";

/** The four control-plane components. */
export const componentNames = ["registry", "planner", "executor", "learning"] as const;
export type ComponentName = (typeof componentNames)[number];

const services = {
  registry: RegistryService,
  planner: PlannerService,
  executor: ExecutorService,
  learning: LearningService,
} as const;

/** Typed clients to every component, presenting one caller's certificate. */
export interface MeshClients {
  registry: Client<typeof RegistryService>;
  planner: Client<typeof PlannerService>;
  executor: Client<typeof ExecutorService>;
  learning: Client<typeof LearningService>;
}

export interface MeshRuntimeOptions {
  /** Default `loadConfig()` (the environment). */
  config?: MeshConfig;
  /**
   * Issue dev certificates (CA under `<certDir>/ca`) for `identities` when
   * missing or expiring. Default: true when `AGENTMESH_DEV_CERTS` is not
   * `false`; but a mounted certificate (cert-manager) is never replaced
   * unless `devCertificates` is set explicitly.
   */
  devCertificates?: boolean;
  /** Identities this process needs certificates for. Default none. */
  identities?: readonly string[];
  /** A store to share (not closed by the runtime), or options to open one. Default: from config. */
  store?: Store | OpenStoreOptions;
  /** A bus to share (not closed by the runtime), or options to connect one. Default: from config and env. */
  bus?: JobBus | ConnectBusOptions;
  /**
   * Decision log file, `"stdout"`, `"stderr"`, or false for none. Default from
   * `AGENTMESH_DECISION_LOG`: `<logDir>/decisions.log`, whose directory must be writable.
   */
  decisionLog?: string | false;
  /** Where a shadow candidate's changed decisions go. Default `<logDir>/policy-shadow.log`. */
  shadowLog?: string;
  /** What kind of process this is, for its default metrics port (`defaultMetricsPorts`). Default "dev". */
  kind?: keyof typeof defaultMetricsPorts;
  /** Port of `/metrics`, `/healthz`, `/readyz`; false for none. Default `AGENTMESH_METRICS_PORT`, else the kind's. */
  httpPort?: number | false;
  /** Where components listen, for clients; overrides `AGENTMESH_<NAME>_ADDR` and the config ports. */
  endpoints?: Partial<Record<ComponentName, string>>;
  /** Default a logger named "mesh". */
  logger?: Logger;
}

export interface MeshRuntime {
  readonly config: MeshConfig;
  readonly store: Store;
  /** Every secret this process reads (file or Vault, `AGENTMESH_SECRETS_PROVIDER`). */
  readonly secrets: SecretStore;
  readonly bus: JobBus;
  readonly policy: PolicyEngine;
  /** The authorizer for calls this process serves, labelled with the process's identities. */
  readonly authorizer: Authorizer;
  /** An authorizer whose decision-log lines say which component and replica decided. */
  authorizerFor(component: string, instance: string): Authorizer;
  /**
   * A decision-logged policy check for questions that are not calls (the
   * dispatch action); `sampleDenials` for questions whose "no" refuses nothing
   * (the payload redaction question, asked on every read).
   */
  policyCheck(
    component: string,
    instance: string,
    options?: { sampleDenials?: boolean },
  ): (input: PolicyInput) => EngineDecision;
  readonly metrics: MeshMetrics;
  readonly log: Logger;
  /** The health endpoint, when one is served. */
  readonly http: HealthHttpServer | undefined;
  /** The SPIFFE ID of a service-account name in this mesh's trust domain and namespace. */
  spiffeId(name: string): string;
  /** A watcher over `name`'s certificate files (closed with the runtime). */
  certs(name: string): Promise<CertWatcher>;
  /** Where a component is reached: a running one in this runtime, `AGENTMESH_<NAME>_ADDR`, or the config port. */
  endpoint(name: ComponentName): Endpoint;
  /** Records where a component of this runtime listens. */
  setAddress(name: ComponentName, address: string): void;
  /** Clients to every component, calling as `caller`. */
  clients(caller: string): Promise<MeshClients>;
  /** Adds a readiness probe for `/readyz` (all must be true). */
  addReadiness(name: string, ready: () => boolean): void;
  /** True when the store serves, the policy is loaded and every probe is ready. */
  ready(): boolean;
  /** Closes clients, watchers, the HTTP endpoint, and the store and bus it opened. */
  close(): Promise<void>;
}

export async function openMeshRuntime(options: MeshRuntimeOptions = {}): Promise<MeshRuntime> {
  const config = options.config ?? loadConfig();
  const log = options.logger ?? createLogger({ name: "mesh" });
  const cleanups: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    await prepareCertificates(config, options);
    const registry = new Registry();
    const metrics = createMeshMetrics({ registry, processMetrics: true });
    storeMetrics(registry);
    // Components and the gateway label their own decisions (`authorizerFor`); this is for the rest.
    const processLabels = {
      component: options.identities?.length === 1 ? options.identities[0]! : "mesh",
      instance: `${hostname()}-${process.pid}`,
    };
    // Security events (OCSF) to the configured SIEM sink; bad settings fail the start here.
    const siem = startSiemExport(process.env, {
      logDir: config.logDir,
      registry,
      onError: (err) => log.warn({ err }, "SIEM sink failed; events kept and retried"),
    });
    if (siem) cleanups.push(() => stopSiemExport(siem));
    const destination = await decisionLogDestination(options.decisionLog, config);
    const shadowLog = createShadowLog({
      destination: options.shadowLog ?? join(config.logDir, "policy-shadow.log"),
      labels: { instance: processLabels.instance },
    });
    cleanups.push(() => shadowLog.close());
    const policy = await openPolicyEngine({
      path: config.policyPath,
      registry,
      logger: log.child({ component: "policy" }),
      onShadow: (d) => shadowLog.record(d),
      // A new bundle must also answer what this process decided lately.
      ...(destination !== false && destination !== "stdout" && destination !== "stderr"
        ? { recordedInputs: () => readRecordedInputs(destination) }
        : {}),
    });
    cleanups.push(() => policy.close());
    let decisionLog: DecisionLog | undefined;
    if (destination !== false) {
      decisionLog = createDecisionLog({ destination });
      cleanups.push(() => decisionLog?.close());
    }
    const authorizerFor = (component: string, instance: string) =>
      createPolicyAuthorizer(policy, {
        ...(decisionLog ? { decisionLog } : {}),
        labels: { component, instance },
      });
    const authorizer = authorizerFor(processLabels.component, processLabels.instance);

    // Vault unreachable at boot: a clear UNAVAILABLE, and the process never reports ready.
    const secrets = await openSecrets(process.env, config.home);
    cleanups.push(() => secrets.close());
    const [store, bus] = await Promise.all([
      openOrShareStore(options.store, config, secrets, log, cleanups, registry),
      openOrShareBus(options.bus, config, log, cleanups, busIdentityOf(options)),
    ]);

    storeUpMetric(registry, () => store.health.status === "serving");
    // Queue and dead-letter figures come from the process that owns the queues (the
    // executor, or every component in one process): on a TLS bus other identities may not read them.
    const ids = options.identities ?? [];
    const ownsQueues = ids.length !== 1 || ids[0] === "executor";
    cleanups.push(registerBusMetrics(bus, registry, { queues: ownsQueues }));

    const addresses = new Map<ComponentName, string>();
    const probes = new Map<string, () => boolean>();
    const watchers = new Map<string, Promise<CertWatcher>>();
    const lazies: LazyClient<DescService>[] = [];
    cleanups.push(() => {
      for (const l of lazies) l.close();
    });
    cleanups.push(async () => {
      for (const w of watchers.values()) (await w.catch(() => undefined))?.close();
    });
    const idOf = (name: string) =>
      spiffeId({ name, trustDomain: config.trustDomain, namespace: config.namespace });

    const runtime: MeshRuntime = {
      config,
      secrets,
      store,
      bus,
      policy,
      authorizer,
      authorizerFor,
      policyCheck: (component, instance, checkOptions) =>
        createPolicyCheck(policy, {
          ...(decisionLog ? { decisionLog } : {}),
          labels: { component, instance },
          ...(checkOptions?.sampleDenials ? { sampleDenials: true } : {}),
        }),
      metrics,
      log,
      http: undefined,
      spiffeId: idOf,
      certs(name) {
        let w = watchers.get(name);
        if (w === undefined) {
          w = watchCertificates({
            dir: certPaths(config.certDir, name).dir,
            name,
            metrics,
            logger: log,
          });
          watchers.set(name, w);
        }
        return w;
      },
      endpoint(name) {
        const address =
          options.endpoints?.[name] ??
          addresses.get(name) ??
          addrSettings[name].read() ??
          `127.0.0.1:${config.ports[name]}`;
        return { address, spiffeId: idOf(name) };
      },
      setAddress(name, address) {
        addresses.set(name, address);
      },
      async clients(caller) {
        const certs = await runtime.certs(caller);
        const make = <N extends ComponentName>(name: N) => {
          const lazy = createLazyClient(services[name], () => runtime.endpoint(name), certs);
          lazies.push(lazy as unknown as LazyClient<DescService>);
          return lazy.client;
        };
        return {
          registry: make("registry"),
          planner: make("planner"),
          executor: make("executor"),
          learning: make("learning"),
        };
      },
      addReadiness(name, ready) {
        probes.set(name, ready);
      },
      ready() {
        if (store.health.status !== "serving" || !policy.ready) return false;
        if (!secrets.status().ready) return false;
        for (const p of probes.values()) if (!p()) return false;
        return true;
      },
      close,
    };
    const port =
      options.httpPort ?? config.ports.metrics ?? defaultMetricsPorts[options.kind ?? "dev"];
    if (port !== false) {
      const http = await serveHealthHttp({
        port,
        host: config.host,
        registry,
        ready: () => runtime.ready(),
        detail: () => policyDetail(policy),
      });
      cleanups.push(() => http.close());
      (runtime as { http: HealthHttpServer | undefined }).http = http;
    }
    return runtime;
  } catch (err) {
    await close();
    throw err;
  }
}

/** The policy lines of `/readyz`: the revisions loaded and why the last reload was rejected. */
function policyDetail(policy: PolicyEngine): string[] {
  const s = policy.status();
  const lines = [
    `policy: ${s.ready ? `serving ${s.revision}` : "NOT LOADED (denying every call)"}`,
  ];
  if (s.lastError) lines.push(`policy: last reload rejected: ${s.lastError}`);
  if (s.candidate) lines.push(`policy: shadow candidate ${s.candidate}`);
  if (s.candidateError) lines.push(`policy: shadow candidate rejected: ${s.candidateError}`);
  return lines;
}

async function prepareCertificates(config: MeshConfig, options: MeshRuntimeOptions) {
  const names = options.identities ?? [];
  if (names.length === 0) return;
  const explicit = options.devCertificates;
  if (explicit === false || (explicit === undefined && !settings.devCerts.read())) return;
  let wanted = [...names];
  if (explicit === undefined) {
    // Mounted certificates (cert-manager) without a dev CA beside them are left alone.
    const hasCa = await exists(certPaths(config.certDir, "ca").key);
    if (!hasCa) {
      const missing = [];
      for (const n of names)
        if (!(await exists(certPaths(config.certDir, n).cert))) missing.push(n);
      wanted = missing;
    }
  }
  if (wanted.length === 0) return;
  await ensureIdentities({
    certDir: config.certDir,
    names: wanted,
    trustDomain: config.trustDomain,
    namespace: config.namespace,
  });
}

/**
 * Where the decision log goes. A file's directory is created and checked for
 * writing here, so a read-only filesystem is a clear error at start (pino's
 * asynchronous file stream would only fail at exit).
 */
async function decisionLogDestination(
  option: string | false | undefined,
  config: MeshConfig,
): Promise<string | false> {
  let destination: string | false;
  if (option !== undefined) destination = option;
  else {
    const mode = settings.decisionLog.read();
    if (mode === "off") destination = false;
    else if (mode === "stdout" || mode === "stderr") destination = mode;
    else if (mode === "file") destination = join(config.logDir, "decisions.log");
    else {
      throw new MeshError(
        Code.InvalidArgument,
        `${settings.decisionLog.name}=${JSON.stringify(mode)}: expected file, stdout, stderr or off`,
      );
    }
  }
  if (destination === false || destination === "stdout" || destination === "stderr") {
    return destination;
  }
  const dir = join(destination, "..");
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    throw new MeshError(
      Code.FailedPrecondition,
      `the decision log directory ${dir} is not writable (${(err as NodeJS.ErrnoException).code ?? err}): ` +
        `mount a writable volume there, set ${settings.logDir.name}, or set ${settings.decisionLog.name}=stdout`,
    );
  }
  return destination;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function openOrShareStore(
  option: Store | OpenStoreOptions | undefined,
  config: MeshConfig,
  secrets: SecretStore,
  log: Logger,
  cleanups: (() => Promise<void> | void)[],
  registry: Registry,
): Promise<Store> {
  if (option !== undefined && "tenant" in option) return option;
  const schema = settings.dbSchema.read();
  const store = await openStore({
    home: config.home,
    secrets,
    ...(schema ? { schema } : {}),
    // Off behind a pooler in transaction mode (PgBouncer before 1.21), which cannot keep them.
    preparedStatements: settings.dbPreparedStatements.read(),
    logger: log.child({ component: "store" }),
    ...option,
  }).catch((err: unknown) => {
    // A role without DDL rights meets pending migrations: the migrations Job has not run yet.
    if (/permission denied/i.test(String((err as Error)?.message))) {
      throw new MeshError(
        Code.FailedPrecondition,
        `the database has pending migrations this role may not apply: run \`agentmesh db migrate --grant <this role>\` as the owner first (${(err as Error).message})`,
      );
    }
    throw err;
  });
  cleanups.push(() => store.close());
  // The process that owns a store signs checkpoints of its audit chain, outside the database.
  try {
    const checkpoints = await startAuditCheckpoints({
      audit: store.audit,
      secrets,
      ...auditCheckpointSettings(config.home),
      log: log.child({ component: "audit" }),
    });
    cleanups.push(() => checkpoints.close());
  } catch (err) {
    log.error({ err }, "audit checkpoints are off: truncation and rewrites will not be detected");
  }
  // Tenants pinned to another region are refused here from the start.
  const region = settings.region.read();
  const enforce = async () => {
    if (!region) return;
    const elsewhere = await store.enforceRegion(region);
    if (elsewhere.length > 0) {
      log.warn({ region, refused: elsewhere }, "tenants pinned to other regions are refused");
    }
  };
  await enforce();
  const retention = startRetention({
    store,
    intervalMs: settings.retentionIntervalMs.read() ?? 3_600_000,
    batch: settings.retentionBatch.read() ?? 500,
    registry,
    log: log.child({ component: "retention" }),
    beforeRun: enforce,
  });
  cleanups.push(() => retention.close());
  return store;
}

/** A process serving one component is that identity on the bus; an embedded mesh is none. */
function busIdentityOf(options: MeshRuntimeOptions): string | undefined {
  const ids = options.identities ?? [];
  return ids.length === 1 ? ids[0] : undefined;
}

async function openOrShareBus(
  option: JobBus | ConnectBusOptions | undefined,
  config: MeshConfig,
  log: Logger,
  cleanups: (() => Promise<void> | void)[],
  identity: string | undefined,
): Promise<JobBus> {
  if (option !== undefined && "publishJob" in option) return option;
  const natsUrl = option?.natsUrl ?? config.natsUrl;
  let certs: CertWatcher | undefined;
  if (identity && [natsUrl].flat().some(isTlsUrl)) {
    // Mutual TLS on the bus with the same certificate files the RPC spine uses.
    certs = await watchCertificates({
      dir: certPaths(config.certDir, identity).dir,
      name: identity,
    });
    cleanups.push(() => certs?.close());
  }
  const bus = await connectBus({
    natsUrl,
    explicit: config.natsExplicit,
    ...busOptionsFromEnv(),
    ...(identity ? { identity: { name: identity, ...(certs ? { certs } : {}) } } : {}),
    log: log.child({ component: "bus" }),
    ...option,
  });
  cleanups.push(() => bus.close({ graceMs: 2000 }));
  return bus;
}
