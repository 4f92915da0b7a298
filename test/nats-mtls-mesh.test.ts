/**
 * The mesh end to end over NATS with mutual TLS and the generated permissions
 * (pinned nats-server, `renderNatsConfig` from policies/data.json): the
 * executor, learning and the agent each connect as their own SPIFFE identity,
 * exactly as `agentmesh serve` / `agentmesh agent` do with `NATS_URL=tls://…`.
 * A goal runs to the end; a result forged by another agent's identity, on the
 * one subject the server lets it use, is refused by the executor, audited and
 * counted, and the goal ends with the real agent's output.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadComponent } from "../cli/commands/serve.js";
import { GoalStatus } from "../gen/agentmesh/v1/common_pb.js";
import { ExecutorService, GoalSchema } from "../gen/agentmesh/v1/executor_pb.js";
import { StepResultSchema, StepResultStatus } from "../gen/agentmesh/v1/jobs_pb.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectBus } from "../lib/bus/connect-bus.js";
import { connectNats } from "../lib/bus/jetstream-bus.js";
import type { JobBus } from "../lib/bus/job-bus.js";
import { inboxPrefixOf } from "../lib/bus/nats-permissions.js";
import { natsTlsOptions } from "../lib/bus/nats-tls.js";
import { loadConfig } from "../lib/config/config.js";
import { createLogger } from "../lib/log/logger.js";
import { createLazyClient, type LazyClient } from "../lib/mesh/lazy-client.js";
import { type ComponentName, type MeshRuntime, openMeshRuntime } from "../lib/mesh/mesh-runtime.js";
import { type RunningComponent, startComponent } from "../lib/mesh/start-component.js";
import { needPostgres, runId } from "../lib/testing/infra.js";
import { startMeshNatsServer } from "../lib/testing/mesh-nats-server.js";
import type { PrivateNatsServer } from "../lib/testing/nats-server.js";
import { certPaths, ensureIdentities, watchCertificates } from "../lib/tls/index.js";
import { defineAgent } from "../sdk/agent/define-agent.js";
import { grpcRegistryLink } from "../sdk/agent/grpc-registry-link.js";
import { type RunningAgent, runAgent } from "../sdk/agent/run-agent.js";
import { watchToEnd } from "./support/goals.js";

const pg = await needPostgres();
const identities = [
  "nats",
  "registry",
  "planner",
  "executor",
  "learning",
  "cli",
  "agent-util",
  "agent-text",
];

describe.skipIf(!pg)("the mesh over NATS with mutual TLS and per-identity permissions", () => {
  const prefix = runId("mtlsmesh");
  const schema = runId("mtlsmesh");
  const tenantId = "acme";
  let home: string;
  let nats: PrivateNatsServer;
  const runtimes: MeshRuntime[] = [];
  const components: RunningComponent[] = [];
  const lazies: LazyClient<typeof ExecutorService | typeof RegistryService>[] = [];
  let agentBus: JobBus;
  let agent: RunningAgent;
  let executorRuntime: MeshRuntime;
  let executor: LazyClient<typeof ExecutorService>["client"];
  /** The agent's handler waits for this gate, so a forged result can come first. */
  let openGate: () => void = () => {};
  let gate = Promise.resolve();

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "agentmesh-mtls-"));
    const certDir = join(home, "certs");
    await ensureIdentities({ certDir, names: identities });
    nats = await startMeshNatsServer({
      certDir,
      prefix,
      knownCapabilities: ["util.echo", "util.sleep", "util.flaky", "text.summarize"],
    });
    const config = loadConfig({
      AGENTMESH_HOME: home,
      AGENTMESH_POLICY: resolve("bundles/agentmesh.tar.gz"),
      DATABASE_URL: pg!.url,
      NATS_URL: nats.url,
      AGENTMESH_METRICS_PORT: "0",
    });
    // One runtime per bus identity, as one process per component would have.
    const endpoints: Partial<Record<ComponentName, string>> = {};
    const open = async (identity: string) => {
      const runtime = await openMeshRuntime({
        config,
        identities: [identity],
        logger: createLogger({ name: identity }),
        store: { databaseUrl: pg!.url, schema },
        bus: { natsUrl: nats.url, explicit: true, prefix, ackWaitMs: 5_000 },
        endpoints,
        decisionLog: false,
        httpPort: 0,
      });
      runtimes.push(runtime);
      return runtime;
    };
    executorRuntime = await open("executor");
    const learningRuntime = await open("learning");
    await executorRuntime.store.tenants.create({ id: tenantId, displayName: "Acme" });
    for (const [name, runtime] of [
      ["registry", executorRuntime],
      ["learning", learningRuntime],
      ["planner", executorRuntime],
      ["executor", executorRuntime],
    ] as const) {
      const running = await startComponent(await loadComponent(name), { runtime, port: 0 });
      components.push(running);
      endpoints[name] = running.address;
    }

    const utilCerts = await watchCertificates({ dir: certPaths(certDir, "agent-util").dir });
    agentBus = await connectBus({
      natsUrl: nats.url,
      explicit: true,
      prefix,
      identity: { name: "agent-util", certs: utilCerts },
    });
    const registry = createLazyClient(
      RegistryService,
      () => executorRuntime.endpoint("registry"),
      utilCerts,
    );
    lazies.push(registry);
    const gated = defineAgent({
      name: "util",
      version: "1.0.0",
      skills: {
        "util.echo": {
          description: "Echo, once the test opens the gate.",
          inputSchema: { type: "object" },
          handler: async (input: Record<string, unknown>) => {
            await gate;
            return input;
          },
        },
      },
    });
    agent = await runAgent(gated, {
      bus: agentBus,
      registry: grpcRegistryLink(registry.client),
      handleSignals: false,
      drainGraceMs: 500,
    });
    const cli = createLazyClient(
      ExecutorService,
      () => executorRuntime.endpoint("executor"),
      await executorRuntime.certs("cli"),
    );
    lazies.push(cli);
    executor = cli.client;
  }, 60_000);

  afterAll(async () => {
    openGate();
    await agent?.stop("test over").catch(() => undefined);
    await agentBus?.close({ graceMs: 0 });
    await Promise.allSettled(components.map((c) => c.stop()));
    for (const l of lazies) l.close();
    await runtimes[0]?.store.orm.em
      .fork()
      .execute(`drop schema if exists "${schema}" cascade`)
      .catch(() => undefined);
    for (const r of runtimes) await r.close();
    await nats?.stop();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("runs a goal with every process on its own identity", async () => {
    expect(executorRuntime.bus.identity).toBe("executor");
    expect(runtimes[1]?.bus.identity).toBe("learning");
    expect(agentBus.identity).toBe("agent-util");
    const { goal } = await executor.submitGoal({
      tenantId,
      kind: "echo",
      input: { message: "over mutual TLS" },
    });
    const events = await watchToEnd(executor, tenantId, goal!.goalId, 30_000);
    expect(events.at(-1)?.kind.case).toBe("finished");
    const { goal: done } = await executor.getGoal({ tenantId, goalId: goal!.goalId });
    expect(done?.status).toBe(GoalStatus.SUCCEEDED);
    // The generated permissions are exactly enough: nobody hit a refusal on the way.
    expect(nats.log()).not.toMatch(/Violation/);
  });

  it("refuses, audits and counts a result forged by another agent's identity", async () => {
    gate = new Promise((r) => {
      openGate = r;
    });
    const { goal } = await executor.submitGoal({
      tenantId,
      kind: "echo",
      input: { message: "the real output" },
    });
    const goalId = goal!.goalId;
    await expect.poll(() => agent.inFlight, { timeout: 15_000 }).toBe(1);

    // agent-text's key: the server lets it publish only on its own result subject.
    const textCerts = await watchCertificates({
      dir: certPaths(join(home, "certs"), "agent-text").dir,
    });
    const nc = await connectNats(nats.url, "forger", 2_000, {
      tls: natsTlsOptions(textCerts, "spiffe://agentmesh.local/ns/agentmesh/sa/nats").options,
      inboxPrefix: inboxPrefixOf("agent-text"),
    });
    const forged = create(StepResultSchema, {
      attemptId: `${goalId}:echo:1:0`,
      goalId,
      tenantId,
      stepId: "echo",
      attempt: 1,
      agentId: "util-impostor",
      status: StepResultStatus.SUCCEEDED,
      output: { kind: { case: "structValue", value: { fields: {} } } },
    });
    nc.publish(
      busNames(prefix).resultSubject(goalId, "agent-text"),
      toBinary(StepResultSchema, forged),
    );
    await nc.flush();
    await nc.close();
    textCerts.close();

    const refusals = async () =>
      (await executorRuntime.store.audit.list({ tenantId, limit: 1000 })).filter(
        (r) => r.action === "result.refused" && r.resource === `goal/${goalId}/step/echo`,
      );
    await expect.poll(async () => (await refusals()).length, { timeout: 15_000 }).toBe(1);
    const [row] = await refusals();
    expect(row?.actor).toBe("spiffe://agentmesh.local/ns/agentmesh/sa/agent-text");
    expect(JSON.stringify(row?.details)).toMatch(/agent-text may not serve util\.echo/);
    const metrics = await executorRuntime.metrics.registry.getSingleMetricAsString(
      "agentmesh_executor_results_refused_total",
    );
    expect(metrics).toMatch(/agentmesh_executor_results_refused_total 1/);

    // The step is still the real agent's: it finishes with its output.
    openGate();
    await watchToEnd(executor, tenantId, goalId, 30_000);
    const { goal: done } = await executor.getGoal({ tenantId, goalId });
    expect(done?.status).toBe(GoalStatus.SUCCEEDED);
    expect(toJsonString(GoalSchema, done!)).toContain("the real output");
  });
});
