/**
 * Process configuration, read once from the environment through the
 * settings registry (`settings.ts`, documented in `docs/configuration.md`)
 * with defaults that let `npm start` work with nothing set.
 */
import { join, resolve } from "node:path";
import { packagePath } from "./package-root.js";
import { settings } from "./settings.js";

export interface MeshConfig {
  home: string;
  trustDomain: string;
  namespace: string;
  certDir: string;
  /** Directory of the decision log (must be writable when the log is a file). */
  logDir: string;
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
    /** `AGENTMESH_METRICS_PORT`; undefined means the process kind's own default (`defaultMetricsPorts`). */
    metrics: number | undefined;
  };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): MeshConfig {
  const home = resolve(settings.home.read(env));
  return {
    home,
    trustDomain: settings.trustDomain.read(env),
    namespace: settings.namespace.read(env),
    certDir: resolve(settings.certDir.read(env) ?? join(home, "certs")),
    logDir: resolve(settings.logDir.read(env) ?? join(home, "logs")),
    natsUrl: settings.natsUrl.read(env),
    natsExplicit: Boolean(env[settings.natsUrl.name]?.trim()),
    policyPath: resolve(settings.policy.read(env) ?? packagePath("bundles", "agentmesh.tar.gz")),
    host: settings.host.read(env),
    ports: {
      registry: settings.registryPort.read(env),
      planner: settings.plannerPort.read(env),
      executor: settings.executorPort.read(env),
      learning: settings.learningPort.read(env),
      gateway: settings.gatewayPort.read(env),
      metrics: settings.metricsPort.read(env),
    },
  };
}
