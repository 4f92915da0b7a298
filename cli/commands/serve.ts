/**
 * `agentmesh serve <registry|planner|executor|learning|gateway>`: one
 * control-plane component (or the public gateway) per process, configured by
 * the environment (docs/configuration.md), any number of replicas sharing
 * PostgreSQL (`DATABASE_URL`) and NATS (`NATS_URL`).
 *
 * Also the table of components (`loadComponent`) the embedded mode and the
 * end-to-end tests start from. Components are loaded on demand so a process
 * only imports what it runs.
 */
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { settings } from "../../lib/config/settings.js";
import { parseSpiffeId } from "../../lib/identity/spiffe.js";
import {
  type ComponentName,
  componentNames,
  openMeshRuntime,
} from "../../lib/mesh/mesh-runtime.js";
import { onShutdownSignal } from "../../lib/mesh/shutdown.js";
import {
  type ComponentDefinition,
  type ComponentDeps,
  startComponent,
} from "../../lib/mesh/start-component.js";
import { startTracing } from "../../lib/telemetry/tracing.js";
import { type Command, UsageError } from "../command.js";

const processNames = [...componentNames, "gateway"] as const;

const usage = `agentmesh serve <${processNames.join("|")}>

Runs one mesh component, or the public gateway, as its own process until
SIGTERM/SIGINT. Configured by the environment: DATABASE_URL (required in
production; unset = embedded PostgreSQL), NATS_URL (JetStream),
AGENTMESH_CERT_DIR (mounted certificates, or dev ones are issued),
AGENTMESH_POLICY, AGENTMESH_HOST, AGENTMESH_<NAME>_PORT, AGENTMESH_<NAME>_ADDR
(where the other components are), AGENTMESH_METRICS_PORT; the gateway also
AGENTMESH_GATEWAY_TLS_CERT/_KEY, AGENTMESH_JWT_*, AGENTMESH_CORS_ORIGINS and
its limits. Every variable: docs/configuration.md (agentmesh config reference).`;

/** How to build each component, imported on demand so a process loads only what it runs. */
export async function loadComponent(name: ComponentName): Promise<ComponentDefinition> {
  switch (name) {
    case "executor": {
      const m = await import("../../services/executor/executor-service.js");
      return m.executorComponent as unknown as ComponentDefinition;
    }
    case "registry": {
      const m = await import("../../services/registry/registry-service.js");
      const { fleetMetrics } = await import("../../services/registry/fleet-metrics.js");
      const { cardAdmission } = await import("../../services/registry/card-admission.js");
      const { cardTrustFile, noCardTrust } = await import("../../lib/signing/card-trust.js");
      return {
        name,
        service: RegistryService,
        create: (d: ComponentDeps) => {
          fleetMetrics(d.metrics.registry, d.store);
          const signersFile = settings.cardSignersFile.read();
          return m.createRegistryService({
            store: d.store,
            log: d.log,
            learning: d.clients.learning,
            admission: cardAdmission({
              trust: signersFile ? cardTrustFile(signersFile, d.log) : noCardTrust,
              check: d.runtime.policyCheck("registry", d.instanceId),
            }),
          });
        },
      } as unknown as ComponentDefinition;
    }
    case "planner": {
      const m = await import("../../services/planner/planner-service.js");
      const { playbookPolicy } = await import("../../services/planner/playbook-policy.js");
      return {
        name,
        service: PlannerService,
        create: (d: ComponentDeps) =>
          m.createPlannerService({
            store: d.store,
            log: d.log,
            registry: d.clients.registry,
            learning: d.clients.learning,
            secrets: d.runtime.secrets,
            playbookPolicy: playbookPolicy({
              check: d.runtime.policyCheck("planner", d.instanceId),
              executor: parseSpiffeId(d.runtime.spiffeId("executor")),
            }),
            payloadPolicy: d.runtime.policyCheck("planner", d.instanceId, { sampleDenials: true }),
          }),
      } as unknown as ComponentDefinition;
    }
    case "learning": {
      const m = await import("../../services/learning/learning-service.js");
      return {
        name,
        service: LearningService,
        create: (d: ComponentDeps) =>
          m.createLearningService({ store: d.store, bus: d.bus, log: d.log }),
      } as unknown as ComponentDefinition;
    }
  }
}

export const serve: Command = {
  name: "serve",
  summary: "run one component (registry, planner, executor, learning, gateway) as its own process",
  usage,
  async run(args) {
    const [name, ...rest] = args;
    if (!name || !(processNames as readonly string[]).includes(name)) {
      throw new UsageError(`which component? one of ${processNames.join(", ")}`);
    }
    if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(" ")}`);
    if (name === "gateway") return serveGateway();
    const definition = await loadComponent(name as ComponentName);
    const started = Date.now();
    // Spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; flushed after the component stops.
    const tracing = await startTracing({ serviceName: `agentmesh-${name}` });
    const running = await startComponent(definition, {
      runtimeOptions: { kind: name as ComponentName },
    }).catch(async (err: unknown) => {
      await tracing?.shutdown().catch(() => undefined);
      throw err;
    });
    const http = running.runtime.http;
    console.log(
      JSON.stringify({
        event: "ready",
        component: name,
        address: running.address,
        spiffeId: running.spiffeId,
        instanceId: running.instanceId,
        bus: running.runtime.bus.kind,
        store: running.runtime.store.location,
        http: http?.url,
        readyMs: Date.now() - started,
      }),
    );
    await onShutdownSignal(async () => {
      await running.stop();
      await tracing?.shutdown().catch(() => undefined);
    });
    return 0;
  },
};

/** The public gateway in front of the components at `AGENTMESH_<NAME>_ADDR`. */
async function serveGateway(): Promise<number> {
  const started = Date.now();
  const [{ meshGatewayOptions, startGateway }, { gatewayOptionsFromEnv }] = await Promise.all([
    import("../../gateway/start-gateway.js"),
    import("./serve-gateway.js"),
  ]);
  // Bad settings fail here, before anything connects.
  const edge = gatewayOptionsFromEnv();
  const tracing = await startTracing({ serviceName: "agentmesh-gateway" });
  const stops: (() => Promise<void>)[] = [async () => tracing?.shutdown()];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  };
  try {
    const runtime = await openMeshRuntime({ identities: ["gateway"], kind: "gateway" });
    stops.push(() => runtime.close());
    const mesh = await meshGatewayOptions(runtime);
    const gateway = await startGateway({
      ...mesh,
      ...edge,
      host: runtime.config.host,
      port: runtime.config.ports.gateway,
      log: runtime.log.child({ component: "gateway" }),
    });
    stops.push(() => gateway.close());
    console.log(
      JSON.stringify({
        event: "ready",
        component: "gateway",
        url: gateway.url,
        tls: Boolean(edge.tls),
        jwt: Boolean(edge.jwt),
        upstreams: mesh.upstreams,
        http: runtime.http?.url,
        readyMs: Date.now() - started,
      }),
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
  await onShutdownSignal(stopAll);
  return 0;
}
