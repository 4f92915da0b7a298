/**
 * Every environment variable agentmesh reads, in one registry: its name,
 * default, meaning and the processes that read it. Code reads a variable
 * through its entry here (`settings.natsUrl.read(env)`), and
 * `docs/configuration.md` is generated from this list
 * (`agentmesh config reference`), so the reference cannot drift from the code:
 * `settings.test.ts` fails when the document is stale or when source code
 * names a variable that is not registered.
 *
 * @example
 * const prefix = settings.busPrefix.read(process.env); // string | undefined
 * const port = settings.gatewayPort.read(process.env); // 8080 unless set
 */
import { Code, MeshError } from "../errors/mesh-error.js";

type Env = Readonly<Record<string, string | undefined>>;

/** Which processes read a variable (a column of the reference). */
export type Reader =
  | "all"
  | "serve"
  | "gateway"
  | "registry"
  | "planner"
  | "executor"
  | "learning"
  | "agent"
  | "cli"
  | "dev";

/** Where a variable sits in the reference. */
export type Section =
  | "Process"
  | "Identity and certificates"
  | "Addresses and ports"
  | "Store"
  | "Secrets"
  | "Bus"
  | "Policy and logs"
  | "Gateway"
  | "Executor"
  | "Planner"
  | "Agents"
  | "Telemetry"
  | "Command line";

export interface Setting<T> {
  readonly name: string;
  readonly section: Section;
  readonly readers: readonly Reader[];
  /** The default as the reference shows it. */
  readonly defaultText: string;
  readonly description: string;
  /** The value from `env` (unset or empty means the default). Throws INVALID_ARGUMENT for a bad value. */
  read(env?: Env): T;
}

interface Meta {
  section: Section;
  readers: readonly Reader[];
  description: string;
}

function define<T>(
  name: string,
  meta: Meta,
  defaultText: string,
  parse: (raw: string | undefined) => T,
): Setting<T> {
  return {
    name,
    ...meta,
    defaultText,
    read(env = process.env) {
      const raw = env[name];
      return parse(raw === "" ? undefined : raw);
    },
  };
}

function invalid(name: string, raw: string, expected: string): MeshError {
  return new MeshError(
    Code.InvalidArgument,
    `${name}=${JSON.stringify(raw)}: expected ${expected}`,
  );
}

/** A string; `fallback` when unset. */
function text(name: string, meta: Meta, fallback: string): Setting<string>;
function text(
  name: string,
  meta: Meta,
  fallback?: undefined,
  defaultText?: string,
): Setting<string | undefined>;
function text(name: string, meta: Meta, fallback?: string, defaultText?: string) {
  return define(
    name,
    meta,
    fallback !== undefined ? `\`${fallback}\`` : (defaultText ?? "unset"),
    (raw) => (raw === undefined ? fallback : raw.trim()),
  );
}

/** A port 0-65535 (0 picks a free one). */
function port(name: string, meta: Meta, fallback: number): Setting<number> {
  return define(name, meta, `\`${fallback}\``, (raw) => parsePort(name, raw) ?? fallback);
}

function parsePort(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n > 65535) throw invalid(name, raw, "a port 0-65535");
  return n;
}

/** A port, or undefined (each reader has its own default, described in `description`). */
function optionalPort(name: string, meta: Meta): Setting<number | undefined> {
  return define(name, meta, "per process", (raw) => parsePort(name, raw));
}

/** A positive integer, or undefined (the reader's own default, named in `defaultText`). */
function positive(name: string, meta: Meta, defaultText: string): Setting<number | undefined> {
  return define(name, meta, defaultText, (raw) => {
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n <= 0) throw invalid(name, raw, "a positive integer");
    return n;
  });
}

/** `true`/`false` (also `1`/`0`). */
function flag(name: string, meta: Meta, fallback: boolean): Setting<boolean> {
  return define(name, meta, `\`${fallback}\``, (raw) => {
    if (raw === undefined) return fallback;
    const v = raw.trim().toLowerCase();
    if (v === "true" || v === "1") return true;
    if (v === "false" || v === "0") return false;
    throw invalid(name, raw, "true or false");
  });
}

/** A comma-separated list (spaces around items ignored). */
function list(name: string, meta: Meta, defaultText = "empty"): Setting<string[]> {
  return define(name, meta, defaultText, (raw) =>
    (raw ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

const m = (section: Section, readers: readonly Reader[], description: string): Meta => ({
  section,
  readers,
  description,
});

/** The SIEM sinks (`AGENTMESH_SIEM_SINK`). */
export const siemSinks = ["off", "stdout", "file", "syslog", "http"] as const;
export type SiemSinkKind = (typeof siemSinks)[number];
const siemReaders: readonly Reader[] = [
  "serve",
  "gateway",
  "registry",
  "planner",
  "executor",
  "learning",
  "cli",
];

/** The four internal components, whose address and port variables follow one pattern. */
const components = ["registry", "planner", "executor", "learning"] as const;
type Component = (typeof components)[number];
const grpcPorts: Record<Component, number> = {
  registry: 7101,
  planner: 7102,
  executor: 7103,
  learning: 7104,
};

function componentPort(name: Component) {
  return port(
    `AGENTMESH_${name.toUpperCase()}_PORT`,
    m("Addresses and ports", [name, "dev"], `port of the ${name}'s mTLS gRPC server`),
    grpcPorts[name],
  );
}

function componentAddr(name: Component) {
  return text(
    `AGENTMESH_${name.toUpperCase()}_ADDR`,
    m(
      "Addresses and ports",
      ["serve", "gateway", "agent"],
      `where the ${name} is reached: \`host:port\` (every address DNS gives is used, round robin), \`dns:///name:port\`, or replicas as \`ip:port,ip:port\``,
    ),
    undefined,
    `\`127.0.0.1:$AGENTMESH_${name.toUpperCase()}_PORT\``,
  );
}

/**
 * Default `/metrics` `/healthz` `/readyz` port of each kind of process, all
 * different so one host can run one of each without setting anything; agents
 * pick a free port (several replicas of one agent share a host) and print it.
 */
export const defaultMetricsPorts = {
  dev: 9464,
  registry: 9465,
  planner: 9466,
  executor: 9467,
  learning: 9468,
  gateway: 9469,
  agent: 0,
} as const;

export const settings = {
  home: text(
    "AGENTMESH_HOME",
    m(
      "Process",
      ["all"],
      "state directory: dev certificates, embedded PostgreSQL data, `admin.key`",
    ),
    ".agentmesh",
  ),
  host: text(
    "AGENTMESH_HOST",
    m(
      "Addresses and ports",
      ["serve", "gateway", "agent", "dev"],
      "address every server of the process binds (`0.0.0.0` in a container)",
    ),
    "127.0.0.1",
  ),
  fromDist: text(
    "AGENTMESH_FROM_DIST",
    m(
      "Process",
      ["all"],
      "`1` runs the compiled `dist/` even in a checkout (an installed package or the image has only `dist/` and always runs it)",
    ),
    undefined,
    "unset",
  ),
  bundleDir: text(
    "AGENTMESH_BUNDLE_DIR",
    m("Process", ["all"], "where a checkout caches the bundle of its sources (inside the package)"),
    undefined,
    "`node_modules/.cache/agentmesh`",
  ),
  logLevel: text(
    "LOG_LEVEL",
    m("Process", ["all"], "pino level of the process log on stdout (`agentmesh dev`: `warn`)"),
    undefined,
    "`info`",
  ),
  logDir: text(
    "AGENTMESH_LOG_DIR",
    m(
      "Policy and logs",
      ["serve", "gateway", "dev"],
      "directory of the decision log; must be writable (checked at start)",
    ),
    undefined,
    "`$AGENTMESH_HOME/logs`",
  ),
  decisionLog: text(
    "AGENTMESH_DECISION_LOG",
    m(
      "Policy and logs",
      ["serve", "gateway", "dev"],
      "where policy decisions go: `file` (`$AGENTMESH_LOG_DIR/decisions.log`), `stdout`, `stderr` or `off`",
    ),
    "file",
  ),
  trustDomain: text(
    "AGENTMESH_TRUST_DOMAIN",
    m("Identity and certificates", ["all"], "SPIFFE trust domain"),
    "agentmesh.local",
  ),
  namespace: text(
    "AGENTMESH_NAMESPACE",
    m(
      "Identity and certificates",
      ["all"],
      "SPIFFE namespace of the identities (`spiffe://<domain>/ns/<namespace>/sa/<name>`)",
    ),
    "agentmesh",
  ),
  cardSignersFile: text(
    "AGENTMESH_CARD_SIGNERS_FILE",
    m(
      "Identity and certificates",
      ["registry", "serve", "dev"],
      'trust roots for signed agent cards: JSON `{"signers": {"<name>": "<Ed25519 public key PEM>"}}`, re-read when it changes; which capabilities need a trusted signer is the policy\'s `card_signing` (ADR-015)',
    ),
    undefined,
    "unset: no trusted signers (a signed card counts as from an unknown signer)",
  ),
  certDir: text(
    "AGENTMESH_CERT_DIR",
    m(
      "Identity and certificates",
      ["all"],
      "certificate files, one directory per identity in cert-manager's layout (`tls.crt`, `tls.key`, `ca.crt`)",
    ),
    undefined,
    "`$AGENTMESH_HOME/certs`",
  ),
  agentIdentity: text(
    "AGENTMESH_AGENT_IDENTITY",
    m(
      "Identity and certificates",
      ["agent"],
      "the identity an agent started by the SDK's `runAgent` or `agentmesh agent run` proves: its certificate is `$AGENTMESH_CERT_DIR/<identity>` and the policy grants it capabilities (`agent_capabilities` in `policies/data.json`)",
    ),
    undefined,
    "`agent-<the agent's name>`",
  ),
  devCerts: flag(
    "AGENTMESH_DEV_CERTS",
    m(
      "Identity and certificates",
      ["serve", "gateway"],
      "issue missing certificates from a dev CA under `$AGENTMESH_CERT_DIR/ca`; mounted certificates without a CA beside them are never replaced",
    ),
    true,
  ),
  policy: text(
    "AGENTMESH_POLICY",
    m(
      "Policy and logs",
      ["serve", "gateway", "dev"],
      "the OPA policy bundle (`agentmesh policy build`; a bare `policy.wasm` with `data.json` beside it also loads), re-read when it changes (mount a ConfigMap here for hot reload); a `candidate.tar.gz` beside it runs in shadow mode",
    ),
    undefined,
    "`bundles/agentmesh.tar.gz` of the package",
  ),
  metricsPort: optionalPort(
    "AGENTMESH_METRICS_PORT",
    m(
      "Addresses and ports",
      ["all"],
      `port of \`/metrics\`, \`/healthz\`, \`/readyz\`; when unset each kind of process has its own default (${Object.entries(
        defaultMetricsPorts,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(", ")}; 0 picks a free port, printed in the ready line)`,
    ),
  ),
  gatewayPort: port(
    "AGENTMESH_GATEWAY_PORT",
    m(
      "Addresses and ports",
      ["gateway", "dev", "cli"],
      "port of the public gateway (Connect, gRPC, gRPC-Web, dashboard)",
    ),
    8080,
  ),
  registryPort: componentPort("registry"),
  plannerPort: componentPort("planner"),
  executorPort: componentPort("executor"),
  learningPort: componentPort("learning"),
  registryAddr: componentAddr("registry"),
  plannerAddr: componentAddr("planner"),
  executorAddr: componentAddr("executor"),
  learningAddr: componentAddr("learning"),

  databaseUrl: text(
    "DATABASE_URL",
    m(
      "Store",
      ["serve", "gateway", "dev", "cli"],
      "PostgreSQL connection string (agents never need it)",
    ),
    undefined,
    "unset: embedded PostgreSQL under `$AGENTMESH_HOME/data`",
  ),
  dbSchema: text(
    "AGENTMESH_DB_SCHEMA",
    m("Store", ["serve", "gateway"], "PostgreSQL schema of every table"),
    undefined,
    "`public`",
  ),
  auditCheckpointKey: text(
    "AGENTMESH_AUDIT_CHECKPOINT_KEY",
    m(
      "Store",
      ["serve", "gateway", "dev", "cli"],
      "Ed25519 key that signs checkpoints of the audit chain's head (created with mode 0600 when missing; its public half beside it as `.pub`); keep it where the database's owner cannot read it",
    ),
    undefined,
    "`$AGENTMESH_HOME/audit-checkpoint.key`",
  ),
  auditCheckpointFile: text(
    "AGENTMESH_AUDIT_CHECKPOINT_FILE",
    m(
      "Store",
      ["serve", "gateway", "dev", "cli"],
      "append-only file of signed audit checkpoints (one JSON line each, one file per database), outside the database; `agentmesh audit verify` checks the chain against it",
    ),
    undefined,
    "`$AGENTMESH_HOME/audit-checkpoints.jsonl`",
  ),
  auditCheckpointIntervalMs: positive(
    "AGENTMESH_AUDIT_CHECKPOINT_INTERVAL_MS",
    m(
      "Store",
      ["serve", "gateway", "dev"],
      "how often the audit chain's head is checkpointed when it moved (and always at shutdown)",
    ),
    "`10000`",
  ),
  dbPreparedStatements: flag(
    "AGENTMESH_DB_PREPARED_STATEMENTS",
    m(
      "Store",
      ["serve", "gateway"],
      "send hot statements as named prepared statements; `false` behind a pooler in transaction mode",
    ),
    true,
  ),
  pgUser: text(
    "AGENTMESH_PG_USER",
    m(
      "Store",
      ["dev", "serve"],
      "operating-system user that runs the embedded PostgreSQL when started as root",
    ),
    undefined,
    "`postgres`, else `nobody`",
  ),

  secretsProvider: define(
    "AGENTMESH_SECRETS_PROVIDER",
    m(
      "Secrets",
      ["all"],
      "where secrets come from: `file` (files, Kubernetes Secret mounts, the variables below; re-read on change) or `vault` (KV v2 and Transit through `VAULT_ADDR`)",
    ),
    "`file`",
    (raw) => {
      const v = (raw ?? "file").trim();
      if (v !== "file" && v !== "vault") {
        throw invalid("AGENTMESH_SECRETS_PROVIDER", v, "file or vault");
      }
      return v;
    },
  ),
  secretsDir: text(
    "AGENTMESH_SECRETS_DIR",
    m(
      "Secrets",
      ["all"],
      "directory of secret files named by secret (`database-url`, `data-kek`, ...; a Kubernetes Secret mounted as a volume), re-read on change",
    ),
    undefined,
    "`$AGENTMESH_HOME/secrets`",
  ),
  vaultAddr: text(
    "VAULT_ADDR",
    m("Secrets", ["all"], "Vault server (with `AGENTMESH_SECRETS_PROVIDER=vault`)"),
    undefined,
    "unset",
  ),
  vaultToken: text(
    "VAULT_TOKEN",
    m("Secrets", ["all"], "Vault token (auth `token`); renewed while it lives"),
    undefined,
    "unset",
  ),
  vaultAuth: define(
    "AGENTMESH_VAULT_AUTH",
    m(
      "Secrets",
      ["all"],
      "how the process logs in to Vault: `token` (`VAULT_TOKEN`), `kubernetes` (service account token) or `approle`",
    ),
    "`token`",
    (raw) => {
      const v = (raw ?? "token").trim();
      if (v !== "token" && v !== "kubernetes" && v !== "approle") {
        throw invalid("AGENTMESH_VAULT_AUTH", v, "token, kubernetes or approle");
      }
      return v;
    },
  ),
  vaultRole: text(
    "AGENTMESH_VAULT_ROLE",
    m("Secrets", ["all"], "Vault role of Kubernetes auth"),
    "agentmesh",
  ),
  vaultAuthMount: text(
    "AGENTMESH_VAULT_AUTH_MOUNT",
    m("Secrets", ["all"], "mount of the auth method"),
    undefined,
    "`kubernetes` or `approle`",
  ),
  vaultKubernetesTokenFile: text(
    "AGENTMESH_VAULT_KUBERNETES_TOKEN_FILE",
    m("Secrets", ["all"], "service account token presented to Vault's Kubernetes auth"),
    "/var/run/secrets/kubernetes.io/serviceaccount/token",
  ),
  vaultRoleId: text(
    "AGENTMESH_VAULT_ROLE_ID",
    m("Secrets", ["all"], "AppRole role id"),
    undefined,
    "unset",
  ),
  vaultSecretIdFile: text(
    "AGENTMESH_VAULT_SECRET_ID_FILE",
    m("Secrets", ["all"], "file holding the AppRole secret id"),
    undefined,
    "unset",
  ),
  vaultKvMount: text(
    "AGENTMESH_VAULT_KV_MOUNT",
    m("Secrets", ["all"], "mount of the KV v2 engine holding the mesh's secrets"),
    "secret",
  ),
  vaultKvPrefix: text(
    "AGENTMESH_VAULT_KV_PREFIX",
    m(
      "Secrets",
      ["all"],
      "path under the KV mount; each secret is `<prefix>/<name>` with its value in the field `value`",
    ),
    "agentmesh",
  ),
  vaultTransitMount: text(
    "AGENTMESH_VAULT_TRANSIT_MOUNT",
    m("Secrets", ["all"], "mount of the Transit engine that wraps data keys"),
    "transit",
  ),
  vaultTransitKey: text(
    "AGENTMESH_VAULT_TRANSIT_KEY",
    m("Secrets", ["all"], "Transit key that wraps tenants' data keys"),
    "agentmesh",
  ),
  vaultCacheMs: positive(
    "AGENTMESH_VAULT_CACHE_MS",
    m(
      "Secrets",
      ["all"],
      "how long a secret read from Vault is served from memory before it is read again (rotation is picked up within this time)",
    ),
    "`30000`",
  ),

  region: text(
    "AGENTMESH_REGION",
    m(
      "Store",
      ["serve", "gateway", "dev"],
      "region this deployment runs in: tenants pinned to another region (`agentmesh tenants retention TENANT --region R`) are refused with FAILED_PRECONDITION; checked at start and with every retention run",
    ),
    undefined,
    "unset: no tenant is refused",
  ),
  retentionIntervalMs: positive(
    "AGENTMESH_RETENTION_INTERVAL_MS",
    m(
      "Store",
      ["serve", "gateway", "dev"],
      "how often finished goals and experiences past their tenant's retention are purged",
    ),
    "`3600000`",
  ),
  retentionBatch: positive(
    "AGENTMESH_RETENTION_BATCH",
    m("Store", ["serve", "gateway", "dev"], "rows one purge statement deletes at most"),
    "`500`",
  ),
  natsUrl: text(
    "NATS_URL",
    m(
      "Bus",
      ["serve", "gateway", "agent", "dev"],
      "NATS server with JetStream; when unset and nothing answers, an in-process bus (one process only)",
    ),
    "nats://127.0.0.1:4222",
  ),
  busPrefix: text(
    "AGENTMESH_BUS_PREFIX",
    m("Bus", ["serve", "agent"], "subject and stream prefix"),
    undefined,
    "`agentmesh`",
  ),
  natsPlaintext: flag(
    "AGENTMESH_NATS_PLAINTEXT",
    m(
      "Bus",
      ["serve", "gateway", "agent"],
      "accept plaintext NATS beyond loopback (development only; otherwise NATS_URL must be `tls://`, mutual TLS with the workload certificate)",
    ),
    false,
  ),
  natsServerId: text(
    "AGENTMESH_NATS_SERVER_ID",
    m("Bus", ["serve", "gateway", "agent"], "SPIFFE ID the NATS server's certificate must carry"),
    undefined,
    "`spiffe://<trust domain>/ns/<namespace>/sa/nats`",
  ),
  busAckWaitMs: positive(
    "AGENTMESH_BUS_ACK_WAIT_MS",
    m("Bus", ["serve", "agent"], "JetStream ack wait of job consumers"),
    "`30000`",
  ),
  busMaxDeliver: positive(
    "AGENTMESH_BUS_MAX_DELIVER",
    m("Bus", ["serve", "agent"], "deliveries of a job before it is dead-lettered"),
    "`5`",
  ),
  busMaxAckPending: positive(
    "AGENTMESH_BUS_MAX_ACK_PENDING",
    m("Bus", ["serve", "agent"], "jobs in flight per consumer"),
    "`1000`",
  ),

  gatewayTlsCert: text(
    "AGENTMESH_GATEWAY_TLS_CERT",
    m(
      "Gateway",
      ["gateway"],
      "certificate chain file of the public listener (re-read on change); with `AGENTMESH_GATEWAY_TLS_KEY`",
    ),
    undefined,
    "unset: plain HTTP",
  ),
  gatewayTlsKey: text(
    "AGENTMESH_GATEWAY_TLS_KEY",
    m("Gateway", ["gateway"], "private key file of the public listener"),
    undefined,
  ),
  gatewayAllowInsecure: flag(
    "AGENTMESH_GATEWAY_ALLOW_INSECURE",
    m(
      "Gateway",
      ["gateway"],
      "serve plain HTTP on a non-loopback address (only behind a TLS-terminating Ingress or Gateway)",
    ),
    false,
  ),
  corsOrigins: list(
    "AGENTMESH_CORS_ORIGINS",
    m(
      "Gateway",
      ["gateway"],
      "origins browsers may call from (comma-separated, e.g. `https://app.example.com`)",
    ),
    "none",
  ),
  jwtJwksUrl: text(
    "AGENTMESH_JWT_JWKS_URL",
    m(
      "Gateway",
      ["gateway"],
      "accept JWTs signed by keys of this JWKS URL (fetched and cached); unset: the JWKS is the `jwt-jwks` secret",
    ),
    undefined,
    "unset",
  ),
  jwtJwksFile: text(
    "AGENTMESH_JWT_JWKS_FILE",
    m(
      "Gateway",
      ["gateway"],
      "where the `file` secrets provider finds the `jwt-jwks` secret, the JWKS of accepted JWTs (re-read when it changes)",
    ),
    undefined,
    "`$AGENTMESH_SECRETS_DIR/jwt-jwks`",
  ),
  jwtIssuer: text(
    "AGENTMESH_JWT_ISSUER",
    m(
      "Gateway",
      ["gateway"],
      "required `iss` of JWTs; with `AGENTMESH_JWT_AUDIENCE` it turns JWT authentication on",
    ),
    undefined,
    "unset: API keys only",
  ),
  jwtAudience: text(
    "AGENTMESH_JWT_AUDIENCE",
    m("Gateway", ["gateway"], "required `aud` of JWTs"),
    undefined,
    "unset: API keys only",
  ),
  jwtTenantClaim: text(
    "AGENTMESH_JWT_TENANT_CLAIM",
    m("Gateway", ["gateway"], "claim naming the tenant"),
    "tenant_id",
  ),
  jwtRolesClaim: text(
    "AGENTMESH_JWT_ROLES_CLAIM",
    m("Gateway", ["gateway"], "claim carrying roles (array or space-separated)"),
    "roles",
  ),
  gatewayRatePerSecond: positive(
    "AGENTMESH_GATEWAY_RATE_PER_SECOND",
    m("Gateway", ["gateway"], "requests per second per tenant that sets no limit of its own"),
    "`200`",
  ),
  gatewayMaxStreams: positive(
    "AGENTMESH_GATEWAY_MAX_STREAMS",
    m("Gateway", ["gateway"], "open streams per tenant that sets no limit of its own"),
    "`100`",
  ),
  gatewayMaxRequestBytes: positive(
    "AGENTMESH_GATEWAY_MAX_REQUEST_BYTES",
    m(
      "Gateway",
      ["gateway"],
      "largest request message (the most any tenant may send, and the default of those that set none)",
    ),
    "`1048576`",
  ),
  gatewayMaxRequestDepth: positive(
    "AGENTMESH_GATEWAY_MAX_REQUEST_DEPTH",
    m(
      "Gateway",
      ["gateway"],
      "deepest nesting of objects and lists in a request of a tenant that sets none",
    ),
    "`32`",
  ),
  gatewayMaxListLength: positive(
    "AGENTMESH_GATEWAY_MAX_LIST_LENGTH",
    m(
      "Gateway",
      ["gateway"],
      "most elements in one list (or entries in one object) of a request of a tenant that sets none",
    ),
    "`10000`",
  ),
  gatewayMaxRequestValues: positive(
    "AGENTMESH_GATEWAY_MAX_REQUEST_VALUES",
    m(
      "Gateway",
      ["gateway"],
      "most values in one request of a tenant that sets none (decoding costs per value)",
    ),
    "`20000`",
  ),
  gatewayMaxTimeoutMs: positive(
    "AGENTMESH_GATEWAY_MAX_TIMEOUT_MS",
    m("Gateway", ["gateway"], "largest deadline a client may ask for"),
    "`600000`",
  ),
  gatewayDefaultTimeoutMs: positive(
    "AGENTMESH_GATEWAY_DEFAULT_TIMEOUT_MS",
    m("Gateway", ["gateway"], "deadline of a forwarded unary call without one"),
    "`30000`",
  ),
  gatewayDashboard: flag(
    "AGENTMESH_GATEWAY_DASHBOARD",
    m("Gateway", ["gateway"], "serve the dashboard at `/`"),
    true,
  ),
  executorTickMs: positive(
    "AGENTMESH_EXECUTOR_TICK_MS",
    m("Executor", ["executor"], "how often the executor looks for due work"),
    "the executor's default",
  ),
  executorLeaseMs: positive(
    "AGENTMESH_EXECUTOR_LEASE_MS",
    m("Executor", ["executor"], "lease of a goal held by one replica"),
    "the executor's default",
  ),
  executorPlanGraceMs: positive(
    "AGENTMESH_EXECUTOR_PLAN_GRACE_MS",
    m("Executor", ["executor"], "how long a goal may wait for its plan"),
    "the executor's default",
  ),
  executorAgentWaitMs: positive(
    "AGENTMESH_EXECUTOR_AGENT_WAIT_MS",
    m(
      "Executor",
      ["executor"],
      "how long a goal waits for agents offering a capability it needs (at planning, or a job no agent took) before it fails",
    ),
    "`120000`",
  ),
  executorRemotePlanning: flag(
    "AGENTMESH_EXECUTOR_REMOTE_PLANNING",
    m(
      "Executor",
      ["executor"],
      "plan every goal through the planner service's PlanGoal; by default the executor plans a goal whose kind has a playbook itself, with the planner's code (ADR-017), and asks the planner only for kinds without one (its LLM planner)",
    ),
    false,
  ),
  executorRedispatchMs: positive(
    "AGENTMESH_EXECUTOR_REDISPATCH_MS",
    m("Executor", ["executor"], "how often dispatched steps without a report are checked"),
    "the executor's default",
  ),

  llmPlannerUrl: text(
    "AGENTMESH_LLM_PLANNER_URL",
    m(
      "Planner",
      ["planner", "dev"],
      "OpenAI-compatible chat completions URL for goal kinds without a playbook",
    ),
    undefined,
    "unset: off",
  ),
  llmPlannerModel: text(
    "AGENTMESH_LLM_PLANNER_MODEL",
    m("Planner", ["planner", "dev"], "model name (required with the URL)"),
    undefined,
  ),
  llmPlannerTimeoutMs: text(
    "AGENTMESH_LLM_PLANNER_TIMEOUT_MS",
    m("Planner", ["planner", "dev"], "timeout of one completion"),
    undefined,
    "the planner's default",
  ),
  llmPlannerJsonMode: text(
    "AGENTMESH_LLM_PLANNER_JSON_MODE",
    m("Planner", ["planner", "dev"], "`0` to not ask for JSON mode"),
    undefined,
    "on",
  ),
  llmPlannerApiKey: text(
    "AGENTMESH_LLM_PLANNER_API_KEY",
    m(
      "Planner",
      ["planner", "dev"],
      "bearer token of the LLM endpoint: the `llm-planner-api-key` secret as a variable (else `$AGENTMESH_SECRETS_DIR/llm-planner-api-key` or Vault; a changed file or Vault version is picked up without a restart); never logged",
    ),
    undefined,
  ),

  agentVersionQueue: flag(
    "AGENTMESH_AGENT_VERSION_QUEUE",
    m(
      "Agents",
      ["agent"],
      "on a mutual-TLS NATS, also consume this agent version's own job queue (steps with a version range, ADR-015), which the server grants only when `agentmesh nats config --agent-version <capability>@<version>` lists it; on any other bus the version queue is always consumed",
    ),
    false,
  ),
  httpAllowHosts: list(
    "AGENTMESH_HTTP_ALLOW_HOSTS",
    m("Agents", ["agent"], "hosts the `http` agent may call"),
    "none",
  ),
  httpAllowCidrs: list(
    "AGENTMESH_HTTP_ALLOW_CIDRS",
    m(
      "Agents",
      ["agent"],
      "address ranges the `http` agent may reach despite its address policy (loopback, private, link-local and metadata addresses are refused otherwise), e.g. `10.1.0.0/16`",
    ),
    "none",
  ),
  shellAllow: list(
    "AGENTMESH_SHELL_ALLOW",
    m(
      "Agents",
      ["agent"],
      "commands the `shell` agent may run; a command without an argument policy (`agents/shell-policy.ts`) takes any arguments",
    ),
    "the commands with an argument policy: echo, uname, date, wc, sort, head, tail, cat, tr, cut, uniq, base64, sha256sum, seq",
  ),

  metricsTenants: define(
    "AGENTMESH_METRICS_TENANTS",
    m(
      "Telemetry",
      ["all"],
      "tenants (comma-separated, at most 100) whose metrics carry their own `tenant` label; every other tenant is counted as `other`, so the number of series stays bounded",
    ),
    "`default`",
    (raw) => {
      if (raw === undefined) return ["default"];
      const names = raw
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
      if (names.length > 100)
        throw invalid("AGENTMESH_METRICS_TENANTS", raw, "at most 100 tenants");
      return names;
    },
  ),
  otlpEndpoint: text(
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    m(
      "Telemetry",
      ["serve", "gateway", "dev"],
      "OTLP/HTTP base URL; spans go to `<url>/v1/traces`",
    ),
    undefined,
    "unset: no export",
  ),
  otlpTracesEndpoint: text(
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    m("Telemetry", ["serve", "gateway", "dev"], "OTLP/HTTP traces URL (wins over the base URL)"),
    undefined,
    "unset",
  ),

  url: text(
    "AGENTMESH_URL",
    m("Command line", ["cli"], "gateway the CLI talks to"),
    undefined,
    "`http://127.0.0.1:$AGENTMESH_GATEWAY_PORT`",
  ),
  apiKey: text(
    "AGENTMESH_API_KEY",
    m(
      "Command line",
      ["cli"],
      "API key of the CLI: the `cli-api-key` secret as a variable (else `$AGENTMESH_SECRETS_DIR/cli-api-key` or Vault)",
    ),
    undefined,
    "the `admin-api-key` secret (`$AGENTMESH_HOME/admin.key`)",
  ),
  siemSink: define(
    "AGENTMESH_SIEM_SINK",
    m(
      "Policy and logs",
      siemReaders,
      "where security events go as OCSF JSON: `off`, `stdout`, `file` (JSON lines appended to `AGENTMESH_SIEM_ADDRESS`), `syslog` (RFC 5424 over TCP with TLS to `AGENTMESH_SIEM_ADDRESS` `host:port`, octet-counted) or `http` (POST of a JSON array to the URL `AGENTMESH_SIEM_ADDRESS`)",
    ),
    "`off`",
    (raw) => {
      const v = (raw ?? "off").trim();
      if (!siemSinks.includes(v as SiemSinkKind)) {
        throw invalid("AGENTMESH_SIEM_SINK", v, siemSinks.join(", "));
      }
      return v as SiemSinkKind;
    },
  ),
  siemAddress: text(
    "AGENTMESH_SIEM_ADDRESS",
    m(
      "Policy and logs",
      siemReaders,
      "the SIEM sink's target: a file path (`file`), `host:port` (`syslog`) or an `http(s)://` URL (`http`)",
    ),
    undefined,
    "`$AGENTMESH_LOG_DIR/siem.jsonl` for `file`; required otherwise",
  ),
  siemCaFile: text(
    "AGENTMESH_SIEM_CA_FILE",
    m(
      "Policy and logs",
      siemReaders,
      "PEM CA bundle the syslog or HTTPS receiver's certificate must chain to",
    ),
    undefined,
    "the system roots",
  ),
  siemBuffer: positive(
    "AGENTMESH_SIEM_BUFFER",
    m(
      "Policy and logs",
      siemReaders,
      "security events held in memory while the sink is down; beyond it new events are dropped and counted in `agentmesh_siem_events_dropped_total`",
    ),
    "`10000`",
  ),
  opa: text(
    "OPA",
    m("Command line", ["cli"], "the `opa` binary `agentmesh policy build|test` runs"),
    "opa",
  ),
  cpuProfileDir: text(
    "AGENTMESH_CPU_PROF_DIR",
    m(
      "Command line",
      ["cli"],
      "folder where the components `agentmesh bench` (and the test harness) starts write a V8 CPU profile each as they exit (`bench/profile-goals.ts`)",
    ),
    undefined,
    "unset: no profiles",
  ),
  stageTraceDir: text(
    "AGENTMESH_STAGE_TRACE_DIR",
    m(
      "Command line",
      ["cli"],
      "folder where each process of a bench run writes, as it exits, the times each goal passed the stages of its path, its event-loop stalls and GC pauses (`bench/goal-stages.ts`)",
    ),
    undefined,
    "unset: nothing recorded",
  ),
} as const;

/** Every registered setting, in reference order. */
export const allSettings: readonly Setting<unknown>[] = Object.values(settings);

/** Names of the variables `AGENTMESH_<NAME>_ADDR`, by component. */
export const addrSettings: Record<Component, Setting<string | undefined>> = {
  registry: settings.registryAddr,
  planner: settings.plannerAddr,
  executor: settings.executorAddr,
  learning: settings.learningAddr,
};
