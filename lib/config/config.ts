/**
 * Process configuration, read once from the environment with documented
 * defaults so `npm start` works with nothing set.
 *
 * | variable | default | meaning |
 * | --- | --- | --- |
 * | `AGENTMESH_HOME` | `.agentmesh` | state directory: dev certificates, embedded PostgreSQL data |
 * | `AGENTMESH_TRUST_DOMAIN` | `agentmesh.local` | SPIFFE trust domain |
 * | `AGENTMESH_NAMESPACE` | `agentmesh` | SPIFFE namespace of this process's identity |
 * | `AGENTMESH_CERT_DIR` | `$AGENTMESH_HOME/certs` | certificate files (cert-manager layout) |
 * | `DATABASE_URL` | unset → embedded PostgreSQL | PostgreSQL connection string |
 * | `NATS_URL` | `nats://127.0.0.1:4222` | NATS server; embedded mode falls back to an in-process bus |
 * | `AGENTMESH_POLICY` | `policies/policy.wasm` | compiled policy bundle |
 * | `AGENTMESH_HOST` | `127.0.0.1` | address internal servers bind to |
 * | `LOG_LEVEL` | `info` | pino level |
 */
import { join, resolve } from "node:path";

export interface MeshConfig {
  home: string;
  trustDomain: string;
  namespace: string;
  certDir: string;
  databaseUrl: string | undefined;
  natsUrl: string;
  /** True when NATS_URL was set explicitly (then it must answer). */
  natsExplicit: boolean;
  policyPath: string;
  host: string;
  /** Ports of the internal gRPC servers and the gateway; 0 picks a free port. */
  ports: {
    registry: number;
    planner: number;
    executor: number;
    learning: number;
    gateway: number;
    metrics: number;
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): MeshConfig {
  const home = resolve(env.AGENTMESH_HOME ?? ".agentmesh");
  return {
    home,
    trustDomain: env.AGENTMESH_TRUST_DOMAIN ?? "agentmesh.local",
    namespace: env.AGENTMESH_NAMESPACE ?? "agentmesh",
    certDir: resolve(env.AGENTMESH_CERT_DIR ?? join(home, "certs")),
    databaseUrl: env.DATABASE_URL || undefined,
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    natsExplicit: Boolean(env.NATS_URL),
    policyPath: resolve(env.AGENTMESH_POLICY ?? "policies/policy.wasm"),
    host: env.AGENTMESH_HOST ?? "127.0.0.1",
    ports: {
      registry: port(env.AGENTMESH_REGISTRY_PORT, 7101),
      planner: port(env.AGENTMESH_PLANNER_PORT, 7102),
      executor: port(env.AGENTMESH_EXECUTOR_PORT, 7103),
      learning: port(env.AGENTMESH_LEARNING_PORT, 7104),
      gateway: port(env.AGENTMESH_GATEWAY_PORT, 8080),
      metrics: port(env.AGENTMESH_METRICS_PORT, 9464),
    },
  };
}

function port(value: string | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error(`invalid port ${JSON.stringify(value)}: expected an integer 0-65535`);
  }
  return n;
}
