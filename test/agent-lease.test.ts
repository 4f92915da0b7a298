/**
 * An agent keeps its registration by itself, on the shipped defaults (15 s lease,
 * heartbeat every 5 s): the real registry over mTLS with the committed policy and
 * a real PostgreSQL store. (1) The registry says the agent expired (as after a
 * database outage longer than the lease): the agent registers again at its next
 * heartbeat. (2) The registry is unreachable for twice the lease, so its sweeper
 * expires the agent: once the registry is back, the agent is live again within a
 * heartbeat interval (plus the gRPC channel's reconnect), same id, no restart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { utilAgent } from "../agents/util.js";
import { RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { createInProcessBus } from "../lib/bus/in-process-bus.js";
import { createPolicyAuthorizer } from "../lib/policy/authorizer.js";
import { createChannel, createServer, type MeshServer } from "../lib/rpc/index.js";
import { needPostgres } from "../lib/testing/infra.js";
import { sleep, waitFor } from "../lib/testing/wait-for.js";
import { heartbeatIntervalMs } from "../sdk/agent/lease-lifecycle.js";
import { type AgentStatus, grpcRegistryLink, type RunningAgent, runAgent } from "../sdk/index.js";
import { createRegistryService, type RegistryServiceHandle } from "../services/registry/index.js";
import { type Harness, openHarness } from "./control-plane-harness.js";

const pg = await needPostgres();
const defaultLeaseMs = 15_000; // the registry's default lease, which this test does not change
const interval = heartbeatIntervalMs(defaultLeaseMs);

describe.skipIf(!pg)("agent lease lifecycle against the real registry", () => {
  let h: Harness;
  let service: RegistryServiceHandle;
  let server: MeshServer | undefined;
  let port = 0;
  let agent: RunningAgent;
  const statuses: AgentStatus[] = [];
  const bus = createInProcessBus({ prefix: "lease" });

  const serveRegistry = async () => {
    server = createServer({
      certs: await h.pki.watch("registry"),
      authorizer: createPolicyAuthorizer(h.engine),
      logger: h.log,
      port,
    });
    server.add(RegistryService, service.impl);
    port = await server.listen();
  };
  const stateInStore = async () => (await h.store.agents.find(agent.agentId))?.state;

  beforeAll(async () => {
    h = await openHarness(pg!.url, ["registry", "agent-util"]);
    service = createRegistryService({ store: h.store, log: h.log });
    await service.start();
    await serveRegistry();
    const channel = createChannel({
      address: `127.0.0.1:${port}`,
      certs: await h.pki.watch("agent-util"),
      server: h.pki.id("registry"),
      logger: h.log,
    });
    agent = await runAgent(utilAgent, {
      bus,
      registry: grpcRegistryLink(channel),
      handleSignals: false,
      onStatus: (s) => statuses.push(s),
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await bus.close({ graceMs: 0 });
    await server?.shutdown(0);
    await service?.stop();
    await h?.cleanup();
  });

  it("starts registered and ready, LIVE in the registry", async () => {
    expect(agent.ready).toBe(true);
    expect(agent.status()).toMatchObject({ phase: "live", agentId: agent.agentId, failures: 0 });
    expect(await stateInStore()).toBe("LIVE");
  });

  it("registers again by itself when the registry answers that it expired", async () => {
    const id = agent.agentId;
    // What the sweeper does after a database outage longer than the lease.
    await h.store.agents.setState(id, "EXPIRED");
    const t0 = Date.now();
    await waitFor(
      "LIVE again",
      async () => agent.ready && (await stateInStore()) === "LIVE",
      interval + 5_000,
      50,
    );
    const tookMs = Date.now() - t0;
    console.log(`lease: live again ${tookMs} ms after the registry expired it`);
    expect(tookMs).toBeLessThanOrEqual(interval + 2_000);
    expect(agent.agentId).toBe(id);
  });

  it("after the registry is unreachable for twice the lease, it is live again soon after it returns", {
    timeout: 2 * defaultLeaseMs + 40_000,
  }, async () => {
    const id = agent.agentId;
    await server!.shutdown(0);
    server = undefined;
    const downAt = Date.now();
    // Not ready once the lease it holds has run out; the registry's sweeper expires it.
    await waitFor("agent not ready", () => !agent.ready, defaultLeaseMs + 2_000, 50);
    expect(Date.now() - downAt).toBeGreaterThanOrEqual(defaultLeaseMs - interval);
    await waitFor("swept", async () => (await stateInStore()) === "EXPIRED", 10_000, 50);
    expect(agent.status()).toMatchObject({ phase: "live", ready: false });
    expect(agent.status().failures).toBeGreaterThan(0);
    await sleep(Math.max(0, 2 * defaultLeaseMs - (Date.now() - downAt)));

    await serveRegistry();
    const upAt = Date.now();
    await waitFor("back", async () => agent.ready && (await stateInStore()) === "LIVE", 20_000, 50);
    const recoveryMs = Date.now() - upAt;
    console.log(
      `lease: registry down ${upAt - downAt} ms; agent live again ${recoveryMs} ms after it returned (heartbeat interval ${interval} ms)`,
    );
    // Within one heartbeat interval (1 s of slack for a loaded machine).
    expect(recoveryMs).toBeLessThanOrEqual(interval + 1_000);
    expect(agent.agentId).toBe(id);
    expect(statuses.some((s) => !s.ready)).toBe(true);
    expect(statuses.at(-1)).toMatchObject({ phase: "live", ready: true });
  });
});
