/**
 * The registry as a gRPC service: thin handlers over `domain/` and the
 * store. Agents register a card (the policy has already checked that the
 * caller may offer every capability on it), keep a lease by heartbeat, and
 * are discovered by capability, most reliable first.
 *
 * @example
 * const registry = createRegistryService({ store, log, learning });
 * server.add(RegistryService, registry.impl);
 * await registry.start(); // change feed + lease sweeper
 * // ...
 * await registry.stop();
 */
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import {
  type Agent,
  AgentChangeKind,
  AgentState,
  type RegistryService,
  type WatchAgentsResponse,
} from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import { capabilityNameProblem } from "../../lib/plan/capability.js";
import type { Client, HandlerContext, ServiceImpl } from "../../lib/rpc/index.js";
import { type AgentRecord, registrationEvent, type Store } from "../../lib/store/index.js";
import { type AgentFeed, type AgentFeedEvent, createAgentFeed } from "./agent-feed.js";
import { agentToMessage, storedCard, toolToJson, toolToMessage } from "./agent-message.js";
import type { CardAdmission } from "./card-admission.js";
import {
  conformanceFailures,
  leaseTtlMs,
  rankCandidates,
  validateCard,
  validateTool,
  watchSnapshot,
} from "./domain/index.js";
import { type LeaseSweeper, startLeaseSweeper } from "./lease-sweeper.js";
import { createReliabilitySource } from "./reliability-source.js";

export interface RegistryServiceDeps {
  store: Store;
  log: Logger;
  /** Learning client for live reliability scores; without it stored scores order FindAgents. */
  learning?: Client<typeof LearningService>;
  /** Default `Date.now`. */
  clock?: () => number;
  /** Lease sweep interval; default 1000 ms. */
  sweepIntervalMs?: number;
  /** How long learning's reliability scores are reused; default 5000 ms. */
  reliabilityTtlMs?: number;
  /** Deadline of a reliability lookup; default 300 ms. */
  reliabilityTimeoutMs?: number;
  /**
   * Peer names (service accounts) that may heartbeat, deregister or register
   * tools for any agent, e.g. operators; default `["cli"]`. A delegated
   * principal (trusted by the policy) may too.
   */
  operators?: readonly string[];
  /**
   * Trust roots for signed cards and the policy's second question at
   * registration (ADR-015); without it signatures are not checked.
   */
  admission?: CardAdmission;
}

/** What every control-plane service factory returns. */
export interface RegistryServiceHandle {
  impl: ServiceImpl<typeof RegistryService>;
  /** Starts the change feed (LISTEN) and the lease sweeper. */
  start(): Promise<void>;
  /** Stops them; open watch streams end. */
  stop(): Promise<void>;
  /** Runs one lease sweep now (tests, admin); resolves to the number expired. */
  sweep(): Promise<number>;
}

const activeStates = ["LIVE", "DRAINING", "PROBATION"] as const;

export function createRegistryService(deps: RegistryServiceDeps): RegistryServiceHandle {
  const { store, log } = deps;
  const clock = deps.clock ?? Date.now;
  const operators = new Set(deps.operators ?? ["cli"]);
  const feed: AgentFeed = createAgentFeed({ store, log });
  const reliability = createReliabilitySource({
    learning: deps.learning,
    ttlMs: deps.reliabilityTtlMs,
    timeoutMs: deps.reliabilityTimeoutMs,
    log,
  });
  const watchers = new Set<AbortController>();
  let sweeper: LeaseSweeper | undefined;

  const notify = (kind: AgentChangeKind, agentId: string) =>
    feed.publish(kind, agentId).catch((err: unknown) => {
      log.warn({ err, agentId }, "agent change notification failed");
    });

  const audit = (
    ctx: HandlerContext,
    change: Parameters<typeof registrationEvent>[0]["change"],
    agentId: string,
    details: Record<string, string>,
  ) =>
    store.audit
      .append(registrationEvent({ actor: ctx.peer.spiffeId, change, agentId, details }))
      .catch((err: unknown) => log.warn({ err, agentId }, "audit append failed"));

  /** The agent, if the caller owns it (same SPIFFE ID) or is an operator. */
  const owned = async (agentId: string, ctx: HandlerContext): Promise<AgentRecord> => {
    if (!agentId) throw new MeshError(Code.InvalidArgument, "agent_id is required");
    const agent = await store.agents.find(agentId);
    if (!agent) throw new MeshError(Code.NotFound, `agent ${agentId} not found`);
    const operator = operators.has(ctx.peer.name) || ctx.principal !== undefined;
    if (agent.spiffeId !== ctx.peer.spiffeId && !operator) {
      throw new MeshError(
        Code.PermissionDenied,
        `agent ${agentId} belongs to another identity; only its own identity may change it`,
      );
    }
    return agent;
  };

  const requireCapability = (capability: string) => {
    const problem = capabilityNameProblem(capability);
    if (problem) throw new MeshError(Code.InvalidArgument, `capability: ${problem}`);
  };

  /** Live agents for a capability, ordered by learning's scores when available. */
  const findLive = async (capability: string, limit: number): Promise<Agent[]> => {
    const [records, scores] = await Promise.all([
      store.agents.findLive(capability, { limit: 1000 }),
      reliability.scores(capability),
    ]);
    const agents = records.map(agentToMessage);
    if (scores) {
      for (const a of agents) {
        const s = scores.get(a.agentId);
        if (s !== undefined) a.reliability[capability] = s;
      }
    }
    return rankCandidates(agents, capability, clock(), limit);
  };

  const impl: ServiceImpl<typeof RegistryService> = {
    async registerAgent(req, ctx) {
      const card = validateCard(req.card);
      const signer = deps.admission?.admit(card, req, ctx) ?? "";
      const instanceId = req.instanceId.trim();
      if (!instanceId || instanceId.length > 128) {
        throw new MeshError(
          Code.InvalidArgument,
          "instance_id is required (at most 128 characters)",
        );
      }
      const ttl = leaseTtlMs(req.leaseTtl);
      const capabilities = card.skills.map((s) => s.capability);
      const stored = storedCard(card, signer);
      // A card with conformance examples takes no live traffic until it passed them (ADR-015).
      const probation =
        card.conformance.length > 0 &&
        !(await store.agents.conformancePassed(card.name, card.version, stored));
      const { agent, created } = await store.agents.upsert({
        name: card.name,
        instanceId,
        version: card.version,
        state: probation ? "PROBATION" : "LIVE",
        card: stored,
        spiffeId: ctx.peer.spiffeId,
        capabilities,
        leaseExpiresAt: new Date(clock() + ttl),
      });
      for (const tool of card.tools) {
        tool.agentId = agent.id;
        await store.agents.putTool({ name: tool.name, agentId: agent.id, spec: toolToJson(tool) });
      }
      await audit(ctx, "registered", agent.id, {
        name: card.name,
        instanceId,
        version: card.version,
        capabilities: capabilities.join(","),
        created: String(created),
        signer,
      });
      await notify(created ? AgentChangeKind.REGISTERED : AgentChangeKind.UPDATED, agent.id);
      ctx.log.info({ agentId: agent.id, name: card.name, created }, "agent registered");
      return { agent: agentToMessage(agent), leaseTtl: durationFromMs(ttl) };
    },

    async heartbeat(req, ctx) {
      const agent = await owned(req.agentId, ctx);
      if (agent.state === "EXPIRED" || agent.state === "DEREGISTERED") {
        throw new MeshError(
          Code.FailedPrecondition,
          `agent ${agent.id} is ${agent.state.toLowerCase()}; register again`,
        );
      }
      let state: "LIVE" | "DRAINING" | undefined;
      if (req.state === AgentState.DRAINING) state = "DRAINING";
      else if (req.state === AgentState.LIVE || req.state === AgentState.UNSPECIFIED)
        // An agent in probation stays there until its conformance examples pass.
        state = agent.state === "PROBATION" ? undefined : "LIVE";
      else throw new MeshError(Code.InvalidArgument, "heartbeat state must be LIVE or DRAINING");
      // Renew from the lease length the agent was granted at registration.
      const ttl = Math.max(agent.leaseExpiresAt.getTime() - agent.lastHeartbeatAt.getTime(), 0);
      const updated = await store.agents.heartbeat(agent.id, {
        leaseExpiresAt: new Date(clock() + leaseTtlMs(ttl)),
        inFlight: req.inFlight,
        state,
      });
      if (updated.state !== agent.state) await notify(AgentChangeKind.UPDATED, agent.id);
      return { leaseExpiresAt: timestampFromMs(updated.leaseExpiresAt.getTime()) };
    },

    async reportConformance(req, ctx) {
      const agent = await owned(req.agentId, ctx);
      if (agent.state !== "PROBATION") {
        if (agent.state === "LIVE" || agent.state === "DRAINING") {
          return { agent: agentToMessage(agent), failures: [] };
        }
        throw new MeshError(
          Code.FailedPrecondition,
          `agent ${agent.id} is ${agent.state.toLowerCase()}; register again`,
        );
      }
      const message = agentToMessage(agent);
      const failures = conformanceFailures(message.card!, req.results);
      if (failures.length > 0) {
        ctx.log.warn({ agentId: agent.id, failures }, "agent failed its conformance examples");
        return { agent: message, failures };
      }
      const passed = await store.agents.passConformance(agent.id);
      if (passed === undefined)
        return { agent: agentToMessage(await store.agents.get(agent.id)), failures: [] };
      await audit(ctx, "conformance.passed", agent.id, {
        name: agent.name,
        version: agent.version,
        examples: String(message.card!.conformance.length),
      });
      await notify(AgentChangeKind.UPDATED, agent.id);
      ctx.log.info({ agentId: agent.id }, "agent passed its conformance examples; live");
      return { agent: agentToMessage(passed), failures: [] };
    },

    async deregisterAgent(req, ctx) {
      const agent = await owned(req.agentId, ctx);
      if (agent.state === "DEREGISTERED") return {};
      await store.agents.setState(agent.id, "DEREGISTERED");
      await audit(ctx, "deregistered", agent.id, {
        name: agent.name,
        reason: req.reason.slice(0, 500),
      });
      await notify(AgentChangeKind.DEREGISTERED, agent.id);
      ctx.log.info({ agentId: agent.id, reason: req.reason }, "agent deregistered");
      return {};
    },

    async getAgent(req) {
      if (!req.agentId) throw new MeshError(Code.InvalidArgument, "agent_id is required");
      return { agent: agentToMessage(await store.agents.get(req.agentId)) };
    },

    async listAgents(req) {
      if (req.capability) requireCapability(req.capability);
      const page = await store.agents.list({
        capability: req.capability || undefined,
        states: req.includeInactive ? undefined : [...activeStates],
        pageSize: req.pageSize === 0 ? 100 : Math.min(req.pageSize, 1000),
        pageToken: req.pageToken || undefined,
      });
      return { agents: page.agents.map(agentToMessage), nextPageToken: page.nextPageToken };
    },

    async findAgents(req) {
      requireCapability(req.capability);
      return { agents: await findLive(req.capability, req.limit) };
    },

    async *watchAgents(req, ctx) {
      if (req.capability) requireCapability(req.capability);
      const stop = new AbortController();
      watchers.add(stop);
      const queue = createQueue<AgentFeedEvent>();
      // Subscribe before the snapshot so nothing between the two is lost.
      const off = feed.subscribe(queue.push);
      const signal = AbortSignal.any([ctx.signal, stop.signal]);
      try {
        yield* await snapshot(req.capability);
        while (!signal.aborted) {
          const event = await queue.next(signal);
          if (event === undefined) break;
          if (event.type === "resync") {
            yield* await snapshot(req.capability);
            continue;
          }
          const agent = event.change.agent;
          if (req.capability && !agent?.card?.skills.some((s) => s.capability === req.capability)) {
            continue;
          }
          yield event.change;
        }
      } finally {
        off();
        watchers.delete(stop);
      }
    },

    async registerTool(req, ctx) {
      const tool = validateTool(req.tool);
      if (tool.agentId) await owned(tool.agentId, ctx);
      const stored = await store.agents.putTool({
        name: tool.name,
        agentId: tool.agentId || null,
        spec: toolToJson(tool),
      });
      await audit(ctx, "tool.registered", tool.agentId || "-", { tool: tool.name });
      return { tool: toolToMessage(stored) };
    },

    async listTools(req) {
      const tools = await store.agents.listTools({ agentId: req.agentId || undefined });
      return { tools: tools.map(toolToMessage) };
    },
  };

  /** SNAPSHOT events for every active agent matching the filter. */
  async function snapshot(capability: string): Promise<WatchAgentsResponse[]> {
    const agents: Agent[] = [];
    let pageToken: string | undefined;
    do {
      const page = await store.agents.list({
        capability: capability || undefined,
        states: [...activeStates],
        pageSize: 500,
        pageToken,
      });
      agents.push(...page.agents.map(agentToMessage));
      pageToken = page.nextPageToken || undefined;
    } while (pageToken);
    return watchSnapshot(agents, capability, clock());
  }

  return {
    impl,
    async start() {
      await feed.start();
      sweeper = startLeaseSweeper({ store, feed, log, intervalMs: deps.sweepIntervalMs });
    },
    async stop() {
      for (const w of watchers) w.abort();
      await sweeper?.stop();
      sweeper = undefined;
      await feed.stop();
    },
    sweep: () => {
      if (!sweeper) throw new MeshError(Code.FailedPrecondition, "registry service is not started");
      return sweeper.sweep();
    },
  };
}

/** An unbounded single-consumer queue whose `next` honours an abort signal. */
function createQueue<T>(): {
  push: (item: T) => void;
  next: (signal: AbortSignal) => Promise<T | undefined>;
} {
  const items: T[] = [];
  let wake: (() => void) | undefined;
  return {
    push(item) {
      items.push(item);
      wake?.();
    },
    async next(signal) {
      while (items.length === 0) {
        if (signal.aborted) return undefined;
        await new Promise<void>((resolve) => {
          const onAbort = () => resolve();
          wake = () => {
            signal.removeEventListener("abort", onAbort);
            resolve();
          };
          signal.addEventListener("abort", onAbort, { once: true });
        });
        wake = undefined;
      }
      return items.shift();
    },
  };
}
