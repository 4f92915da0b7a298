/**
 * The registry over real mTLS with the committed policy and a real store:
 * registration, heartbeats, ownership, expiry by the sweeper, deregistration,
 * discovery order and the watch stream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AgentChangeKind,
  AgentState,
  RegistryService,
  type WatchAgentsResponse,
} from "../gen/agentmesh/v1/registry_pb.js";
import { Code, isMeshError } from "../lib/errors/mesh-error.js";
import type { Client, MeshServer } from "../lib/rpc/index.js";
import { needPostgres, runId } from "../lib/testing/infra.js";
import { createRegistryService, type RegistryServiceHandle } from "../services/registry/index.js";
import { type Harness, openHarness } from "./control-plane-harness.js";

const pg = await needPostgres();

async function codeOf(p: Promise<unknown>): Promise<Code> {
  try {
    await p;
    return Code.Ok;
  } catch (err) {
    if (!isMeshError(err)) throw err;
    return err.code;
  }
}

const card = (name: string, capabilities: string[]) => ({
  name,
  version: "1.0.0",
  owner: "tests",
  skills: capabilities.map((capability) => ({ capability, description: capability })),
});

describe.skipIf(!pg)("registry service over mTLS", () => {
  let h: Harness;
  let service: RegistryServiceHandle;
  let server: MeshServer;
  let asText: Client<typeof RegistryService>;
  let asUtil: Client<typeof RegistryService>;
  let asExecutor: Client<typeof RegistryService>;
  let asCli: Client<typeof RegistryService>;
  const watch: { events: WatchAgentsResponse[]; done?: Promise<void> } = { events: [] };
  const stopWatch = new AbortController();

  beforeAll(async () => {
    h = await openHarness(pg!.url, ["registry", "agent-text", "agent-util", "executor", "cli"]);
    service = createRegistryService({ store: h.store, log: h.log, sweepIntervalMs: 100 });
    await service.start();
    server = await h.serve("registry", RegistryService, service.impl);
    asText = await h.client(RegistryService, server, "registry", "agent-text");
    asUtil = await h.client(RegistryService, server, "registry", "agent-util");
    asExecutor = await h.client(RegistryService, server, "registry", "executor");
    asCli = await h.client(RegistryService, server, "registry", "cli");
  });

  afterAll(async () => {
    stopWatch.abort();
    await watch.done?.catch(() => undefined);
    await service?.stop();
    await h?.cleanup();
  });

  const waitFor = async (pred: (e: WatchAgentsResponse) => boolean, ms = 5000) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const hit = watch.events.find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(
      `no matching watch event in ${ms} ms: ${JSON.stringify(watch.events.map((e) => [e.kind, e.agent?.agentId]))}`,
    );
  };

  it("registers with the caller's SPIFFE ID, renews by heartbeat and finds the agent", async () => {
    const { agent, leaseTtl } = await asText.registerAgent({
      card: card("text-agent", ["text.summarize", "text.translate"]),
      instanceId: runId("i"),
    });
    expect(agent?.spiffeId).toBe(h.pki.id("agent-text"));
    expect(agent?.state).toBe(AgentState.LIVE);
    expect(Number(leaseTtl?.seconds)).toBe(15);
    const hb = await asText.heartbeat({ agentId: agent!.agentId, inFlight: 2 });
    expect(Number(hb.leaseExpiresAt?.seconds)).toBeGreaterThan(Date.now() / 1000 + 10);
    const found = await asExecutor.findAgents({ capability: "text.summarize" });
    expect(found.agents.map((a) => a.agentId)).toContain(agent!.agentId);
    const got = await asExecutor.getAgent({ agentId: agent!.agentId });
    expect(got.agent?.inFlight).toBe(2);
    expect(got.agent?.card?.skills.map((s) => s.capability)).toEqual([
      "text.summarize",
      "text.translate",
    ]);
  });

  it("re-registering the same (name, instance) keeps the agent id", async () => {
    const instanceId = runId("i");
    const a = await asText.registerAgent({ card: card("text-agent", ["text.echo"]), instanceId });
    const b = await asText.registerAgent({
      card: card("text-agent", ["text.echo", "text.upper"]),
      instanceId,
    });
    expect(b.agent?.agentId).toBe(a.agent?.agentId);
    expect(b.agent?.card?.skills).toHaveLength(2);
  });

  it("refuses another identity's takeover of a live (name, instance), allows it once deregistered", async () => {
    const instanceId = runId("i");
    const { agent } = await asText.registerAgent({
      card: card("contested-agent", ["text.echo"]),
      instanceId,
    });
    const takeover = asUtil.registerAgent({
      card: card("contested-agent", ["util.echo"]),
      instanceId,
    });
    expect(await codeOf(takeover)).toBe(Code.PermissionDenied);
    const kept = await asExecutor.getAgent({ agentId: agent!.agentId });
    expect(kept.agent?.spiffeId).toBe(h.pki.id("agent-text"));
    expect(kept.agent?.card?.skills.map((s) => s.capability)).toEqual(["text.echo"]);

    await asText.deregisterAgent({ agentId: agent!.agentId });
    const taken = await asUtil.registerAgent({
      card: card("contested-agent", ["util.echo"]),
      instanceId,
    });
    expect(taken.agent?.agentId).toBe(agent!.agentId);
    expect(taken.agent?.spiffeId).toBe(h.pki.id("agent-util"));
    expect(taken.agent?.state).toBe(AgentState.LIVE);
  });

  it("denies a capability the identity is not granted (policy) and rejects bad cards", async () => {
    expect(
      await codeOf(asText.registerAgent({ card: card("sneaky", ["util.echo"]), instanceId: "x" })),
    ).toBe(Code.PermissionDenied);
    expect(
      await codeOf(asText.registerAgent({ card: card("Bad Name!", ["text.x"]), instanceId: "x" })),
    ).toBe(Code.InvalidArgument);
    expect(
      await codeOf(asText.registerAgent({ card: card("ok", ["text.x"]), instanceId: "" })),
    ).toBe(Code.InvalidArgument);
  });

  it("lets only the owning identity heartbeat or deregister; unknown ids are NOT_FOUND", async () => {
    const { agent } = await asText.registerAgent({
      card: card("owned-agent", ["text.owned"]),
      instanceId: runId("i"),
    });
    expect(await codeOf(asUtil.heartbeat({ agentId: agent!.agentId }))).toBe(Code.PermissionDenied);
    expect(await codeOf(asUtil.deregisterAgent({ agentId: agent!.agentId }))).toBe(
      Code.PermissionDenied,
    );
    expect(
      await codeOf(asText.heartbeat({ agentId: "00000000-0000-0000-0000-000000000000" })),
    ).toBe(Code.NotFound);
  });

  it("orders FindAgents by reliability", async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const { agent } = await asUtil.registerAgent({
        card: card(`util-agent-${n}`, ["util.rank"]),
        instanceId: runId("i"),
      });
      ids.push(agent!.agentId);
    }
    await h.store.agents.setReliability(ids[0]!, "util.rank", 0.2);
    await h.store.agents.setReliability(ids[1]!, "util.rank", 0.9);
    const { agents } = await asExecutor.findAgents({ capability: "util.rank", limit: 2 });
    expect(agents.map((a) => a.agentId)).toEqual([ids[1], ids[2]]); // 0.9, then unknown (0.5)
    expect(await codeOf(asExecutor.findAgents({ capability: "" }))).toBe(Code.InvalidArgument);
  });

  it("streams a snapshot, then registrations, expiries (by the sweeper) and deregistrations", async () => {
    const { agent: existing } = await asUtil.registerAgent({
      card: card("util-watched", ["util.watch"]),
      instanceId: runId("i"),
    });
    watch.done = (async () => {
      for await (const e of asCli.watchAgents(
        { capability: "util.watch" },
        { signal: stopWatch.signal },
      )) {
        watch.events.push(e);
      }
    })();
    await waitFor(
      (e) => e.kind === AgentChangeKind.SNAPSHOT && e.agent?.agentId === existing!.agentId,
    );

    const { agent: fresh } = await asUtil.registerAgent({
      card: card("util-watched", ["util.watch"]),
      instanceId: runId("i"),
    });
    await waitFor(
      (e) => e.kind === AgentChangeKind.REGISTERED && e.agent?.agentId === fresh!.agentId,
    );

    // The agent stops heartbeating: its lease runs out and the sweeper (100 ms) withdraws it.
    await h.store.agents.heartbeat(fresh!.agentId, { leaseExpiresAt: new Date(Date.now() - 1) });
    const expired = await waitFor(
      (e) => e.kind === AgentChangeKind.EXPIRED && e.agent?.agentId === fresh!.agentId,
    );
    expect(expired.agent?.state).toBe(AgentState.EXPIRED);
    expect(await codeOf(asUtil.heartbeat({ agentId: fresh!.agentId }))).toBe(
      Code.FailedPrecondition,
    );
    const live = await asExecutor.findAgents({ capability: "util.watch" });
    expect(live.agents.map((a) => a.agentId)).toEqual([existing!.agentId]);

    await asUtil.deregisterAgent({ agentId: existing!.agentId, reason: "test over" });
    await waitFor(
      (e) => e.kind === AgentChangeKind.DEREGISTERED && e.agent?.agentId === existing!.agentId,
    );
    expect((await asExecutor.findAgents({ capability: "util.watch" })).agents).toHaveLength(0);

    // A change to an agent of another capability is filtered out.
    expect(
      watch.events.every((e) => e.agent?.card?.skills.some((s) => s.capability === "util.watch")),
    ).toBe(true);

    const audit = await h.store.audit.list({ limit: 1000 });
    const actions = audit.map((e) => `${e.action} ${e.resource}`);
    expect(actions).toContain(`agent.expired agent/${fresh!.agentId}`);
    expect(actions).toContain(`agent.deregistered agent/${existing!.agentId}`);
  });

  it("lists agents paged, hiding inactive ones unless asked", async () => {
    const first = await asExecutor.listAgents({ pageSize: 2 });
    expect(first.agents).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    const all = await asExecutor.listAgents({ pageSize: 1000, includeInactive: true });
    const active = await asExecutor.listAgents({ pageSize: 1000 });
    expect(all.agents.length).toBeGreaterThan(active.agents.length);
    expect(await codeOf(asExecutor.listAgents({ pageToken: "garbage" }))).toBe(
      Code.InvalidArgument,
    );
  });

  it("registers and lists tools of an agent", async () => {
    const { agent } = await asText.registerAgent({
      card: {
        ...card("tool-agent", ["text.tool"]),
        tools: [{ name: "text.lookup", authScope: "tools:text" }],
      },
      instanceId: runId("i"),
    });
    await asText.registerTool({
      tool: { name: "text.extra", agentId: agent!.agentId, authScope: "tools:text" },
    });
    const { tools } = await asCli.listTools({ agentId: agent!.agentId });
    expect(tools.map((t) => t.name)).toEqual(["text.extra", "text.lookup"]);
    expect(
      await codeOf(asUtil.registerTool({ tool: { name: "util.steal", agentId: agent!.agentId } })),
    ).toBe(Code.PermissionDenied);
  });
});
