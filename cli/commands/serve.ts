/**
 * `agentmesh serve <registry|planner|executor|learning>`: one control-plane
 * component per process, configured by the environment, any number of
 * replicas sharing PostgreSQL (`DATABASE_URL`) and NATS (`NATS_URL`).
 *
 * Also the table of components (`loadComponent`) the embedded mode and the
 * end-to-end tests start from. Components are loaded on demand so a process
 * only imports what it runs.
 */
import { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { type ComponentName, componentNames } from "../../lib/mesh/mesh-runtime.js";
import { onShutdownSignal } from "../../lib/mesh/shutdown.js";
import {
  type ComponentDefinition,
  type ComponentDeps,
  startComponent,
} from "../../lib/mesh/start-component.js";
import { startTracing } from "../../lib/telemetry/tracing.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh serve <${componentNames.join("|")}>

Runs one mesh component as its own process until SIGTERM/SIGINT.
Environment: DATABASE_URL (required in production; unset = embedded PostgreSQL),
NATS_URL (JetStream), AGENTMESH_CERT_DIR (mounted certificates, or dev ones are
issued), AGENTMESH_POLICY, AGENTMESH_HOST, AGENTMESH_<NAME>_PORT,
AGENTMESH_<NAME>_ADDR (where the other components are), AGENTMESH_METRICS_PORT,
AGENTMESH_BUS_PREFIX, AGENTMESH_DB_SCHEMA.`;

/** How to build each component, imported on demand so a process loads only what it runs. */
export async function loadComponent(name: ComponentName): Promise<ComponentDefinition> {
  switch (name) {
    case "executor": {
      const m = await import("../../services/executor/executor-service.js");
      return m.executorComponent as unknown as ComponentDefinition;
    }
    case "registry": {
      const m = await import("../../services/registry/registry-service.js");
      return {
        name,
        service: RegistryService,
        create: (d: ComponentDeps) =>
          m.createRegistryService({ store: d.store, log: d.log, learning: d.clients.learning }),
      } as unknown as ComponentDefinition;
    }
    case "planner": {
      const m = await import("../../services/planner/planner-service.js");
      return {
        name,
        service: PlannerService,
        create: (d: ComponentDeps) =>
          m.createPlannerService({
            store: d.store,
            log: d.log,
            registry: d.clients.registry,
            learning: d.clients.learning,
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
  summary: "run one component (registry, planner, executor, learning) as its own process",
  usage,
  async run(args) {
    const [name, ...rest] = args;
    if (!name || !(componentNames as readonly string[]).includes(name)) {
      throw new UsageError(`which component? one of ${componentNames.join(", ")}`);
    }
    if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(" ")}`);
    const definition = await loadComponent(name as ComponentName);
    const started = Date.now();
    // Spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; flushed after the component stops.
    const tracing = await startTracing({ serviceName: `agentmesh-${name}` });
    const running = await startComponent(definition).catch(async (err: unknown) => {
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
