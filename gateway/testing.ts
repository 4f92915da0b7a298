/**
 * Stand-ins for the internal services, for the gateway's tests and
 * `bench/gateway` while the real services are wired elsewhere: small
 * in-memory implementations served by a real `lib/rpc` mTLS server with the
 * real policy. The executor keeps goals in a map and runs each goal's steps on
 * timers (a diamond DAG: plan → fetch, analyze → report), publishing every
 * state change to `WatchGoal` streams. Replace with the real services by
 * passing their addresses to `startGateway` instead.
 *
 * @example
 * const mesh = await startStandInMesh({ pki, authorizer });
 * const gateway = await startGateway({ ..., upstreams: mesh.upstreams });
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import { ErrorInfoSchema, GoalStatus, StepStatus } from "../gen/agentmesh/v1/common_pb.js";
import {
  ExecutorService,
  type Goal,
  type GoalEvent,
  GoalEventSchema,
  GoalSchema,
} from "../gen/agentmesh/v1/executor_pb.js";
import { LearningService } from "../gen/agentmesh/v1/learning_pb.js";
import { PlannerService } from "../gen/agentmesh/v1/planner_pb.js";
import { AgentState, RegistryService } from "../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../lib/errors/mesh-error.js";
import type { Authorizer } from "../lib/rpc/authorizer.js";
import type { ServiceImpl } from "../lib/rpc/handler.js";
import { createServer, type MeshServer } from "../lib/rpc/server.js";
import type { TestPki } from "../lib/rpc/testing.js";
import type { Upstream } from "./public-api.js";

interface StepDef {
  stepId: string;
  capability: string;
  dependsOn: string[];
}

/** The stand-in plan of every goal. */
export const standInSteps: readonly StepDef[] = [
  { stepId: "plan", capability: "text.plan", dependsOn: [] },
  { stepId: "fetch", capability: "http.fetch", dependsOn: ["plan"] },
  { stepId: "analyze", capability: "data.analyze", dependsOn: ["plan"] },
  { stepId: "report", capability: "text.summarize", dependsOn: ["fetch", "analyze"] },
];

interface Entry {
  goal: Goal;
  events: GoalEvent[];
  wake: Set<() => void>;
  timers: NodeJS.Timeout[];
}

export interface StandInExecutorOptions {
  /** How long each step takes. Default 40 ms. */
  stepMs?: number;
}

/** An in-memory ExecutorService. */
export function standInExecutor(
  options: StandInExecutorOptions = {},
): ServiceImpl<typeof ExecutorService> & { close(): void } {
  const stepMs = options.stepMs ?? 40;
  const goals = new Map<string, Entry>();
  const byKey = new Map<string, string>();
  let seq = 0;

  const emit = (e: Entry, kind: MessageInitShape<typeof GoalEventSchema>["kind"]) => {
    const event = create(GoalEventSchema, {
      goalId: e.goal.goalId,
      tenantId: e.goal.tenantId,
      sequence: BigInt(e.events.length + 1),
      time: timestampNow(),
      kind,
    });
    e.events.push(event);
    e.goal.updatedAt = event.time;
    for (const w of e.wake) w();
  };
  const finished = (g: Goal) =>
    g.status === GoalStatus.SUCCEEDED ||
    g.status === GoalStatus.FAILED ||
    g.status === GoalStatus.CANCELLED;

  const run = (e: Entry) => {
    const g = e.goal;
    g.status = GoalStatus.RUNNING;
    emit(e, {
      case: "planned",
      value: {
        plan: {
          planId: `p-${g.goalId}`,
          goalId: g.goalId,
          tenantId: g.tenantId,
          goalKind: g.kind,
          strategy: "default",
          outputStep: "report",
          steps: standInSteps.map((s) => ({ ...s, name: s.stepId })),
        },
      },
    });
    const start = (step: (typeof g.steps)[number]) => {
      step.status = StepStatus.RUNNING;
      step.attempts = 1;
      step.startedAt = timestampNow();
      emit(e, {
        case: "stepDispatched",
        value: {
          stepId: step.stepId,
          attempt: 1,
          attemptId: `${g.goalId}/${step.stepId}/1`,
          capability: step.capability,
        },
      });
      emit(e, {
        case: "stepStarted",
        value: { stepId: step.stepId, attempt: 1, agentId: "stand-in" },
      });
      e.timers.push(
        setTimeout(() => {
          if (finished(g)) return;
          step.status = StepStatus.SUCCEEDED;
          step.finishedAt = timestampNow();
          step.output = create(ValueSchema, {
            kind: { case: "stringValue", value: `${step.stepId} done` },
          });
          emit(e, {
            case: "stepSucceeded",
            value: { stepId: step.stepId, attempt: 1, output: step.output, agentIds: ["stand-in"] },
          });
          advance();
        }, stepMs),
      );
    };
    const advance = () => {
      const done = new Set(
        g.steps.filter((s) => s.status === StepStatus.SUCCEEDED).map((s) => s.stepId),
      );
      if (done.size === g.steps.length) {
        g.status = GoalStatus.SUCCEEDED;
        g.finishedAt = timestampNow();
        g.output = create(ValueSchema, { kind: { case: "stringValue", value: "report done" } });
        emit(e, { case: "finished", value: { status: g.status, output: g.output } });
        return;
      }
      for (const s of g.steps) {
        if (s.status === StepStatus.PENDING && s.dependsOn.every((d) => done.has(d))) start(s);
      }
    };
    advance();
  };

  const get = (tenantId: string, goalId: string): Entry => {
    const e = goals.get(goalId);
    // Another tenant's goal is indistinguishable from a missing one.
    if (!e || e.goal.tenantId !== tenantId)
      throw new MeshError(Code.NotFound, `goal ${goalId} not found`);
    return e;
  };

  return {
    submitGoal(req) {
      if (!req.kind) throw new MeshError(Code.InvalidArgument, "kind is required");
      if (req.kind === "explode")
        throw new Error("stand-in executor exploded (tests an internal error)");
      const key = req.idempotencyKey ? `${req.tenantId}/${req.idempotencyKey}` : undefined;
      const existing = key ? byKey.get(key) : undefined;
      if (existing) return { goal: goals.get(existing)?.goal, created: false };
      const goalId = `g-${(++seq).toString().padStart(6, "0")}-${Math.random().toString(36).slice(2, 8)}`;
      const goal = create(GoalSchema, {
        goalId,
        tenantId: req.tenantId,
        kind: req.kind,
        ...(req.input ? { input: req.input } : {}),
        idempotencyKey: req.idempotencyKey,
        priority: req.priority,
        labels: req.labels,
        status: GoalStatus.PLANNING,
        createdAt: timestampNow(),
        steps: standInSteps.map((s) => ({
          stepId: s.stepId,
          capability: s.capability,
          dependsOn: s.dependsOn,
          status: StepStatus.PENDING,
        })),
      });
      const e: Entry = { goal, events: [], wake: new Set(), timers: [] };
      goals.set(goalId, e);
      if (key) byKey.set(key, goalId);
      emit(e, { case: "submitted", value: { kind: req.kind } });
      e.timers.push(setTimeout(() => run(e), 5));
      return { goal, created: true };
    },
    getGoal(req) {
      return { goal: get(req.tenantId, req.goalId).goal };
    },
    listGoals(req) {
      const all = [...goals.values()]
        .map((e) => e.goal)
        .filter((g) => g.tenantId === req.tenantId)
        .filter((g) => !req.kind || g.kind === req.kind)
        .filter((g) => req.statuses.length === 0 || req.statuses.includes(g.status))
        .reverse()
        .slice(0, req.pageSize || 50);
      return { goals: all.map((g) => ({ ...g, steps: [] })) };
    },
    cancelGoal(req) {
      const e = get(req.tenantId, req.goalId);
      const g = e.goal;
      if (!finished(g)) {
        for (const t of e.timers) clearTimeout(t);
        g.status = GoalStatus.CANCELLED;
        g.finishedAt = timestampNow();
        g.error = create(ErrorInfoSchema, {
          code: "CANCELLED",
          message: req.reason || "cancelled",
        });
        for (const s of g.steps)
          if (s.status !== StepStatus.SUCCEEDED) s.status = StepStatus.CANCELLED;
        emit(e, { case: "finished", value: { status: g.status, error: g.error } });
      }
      return { goal: g };
    },
    async *watchGoal(req, ctx) {
      const e = get(req.tenantId, req.goalId);
      let next = Number(req.afterSequence);
      while (!ctx.signal.aborted) {
        while (next < e.events.length) {
          const event = e.events[next++] as GoalEvent;
          yield { event };
          if (event.kind.case === "finished") return;
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            e.wake.delete(wake);
            ctx.signal.removeEventListener("abort", wake);
            resolve();
          };
          e.wake.add(wake);
          ctx.signal.addEventListener("abort", wake, { once: true });
        });
      }
    },
    close() {
      for (const e of goals.values()) for (const t of e.timers) clearTimeout(t);
    },
  };
}

const standInAgents = [
  { agentId: "agent-text-1", name: "text", capabilities: ["text.plan", "text.summarize"] },
  { agentId: "agent-http-1", name: "http", capabilities: ["http.fetch"] },
  { agentId: "agent-data-1", name: "data", capabilities: ["data.analyze"] },
];

/** An in-memory RegistryService (read side) with three live agents. */
export function standInRegistry(): ServiceImpl<typeof RegistryService> {
  const agents = standInAgents.map((a) => ({
    agentId: a.agentId,
    state: AgentState.LIVE,
    card: {
      name: a.name,
      version: "1.0.0",
      skills: a.capabilities.map((capability) => ({ capability })),
    },
    reliability: Object.fromEntries(a.capabilities.map((c) => [c, 0.97])),
    lastHeartbeatAt: timestampNow(),
    inFlight: 0,
  }));
  const offers = (a: (typeof agents)[number], cap: string) =>
    !cap || a.card.skills.some((s) => s.capability === cap);
  return {
    listAgents: (req) => ({ agents: agents.filter((a) => offers(a, req.capability)) }),
    getAgent: (req) => {
      const agent = agents.find((a) => a.agentId === req.agentId);
      if (!agent) throw new MeshError(Code.NotFound, `agent ${req.agentId} not found`);
      return { agent };
    },
    findAgents: (req) => ({ agents: agents.filter((a) => offers(a, req.capability)) }),
    listTools: () => ({ tools: [] }),
    async *watchAgents(req) {
      for (const agent of agents)
        if (offers(agent, req.capability)) yield { kind: 1, agent, time: timestampNow() };
    },
  };
}

/** A PlannerService that knows one playbook. */
export function standInPlanner(): ServiceImpl<typeof PlannerService> {
  const playbook = { goalKind: "research", description: "stand-in playbook", version: 1 };
  return {
    listPlaybooks: () => ({ playbooks: [playbook] }),
    getPlaybook: (req) => {
      if (req.goalKind !== playbook.goalKind)
        throw new MeshError(Code.NotFound, `playbook ${req.goalKind} not found`);
      return { playbook };
    },
  };
}

/** A LearningService with fixed statistics. */
export function standInLearning(): ServiceImpl<typeof LearningService> {
  return {
    getStrategyStats: () => ({
      strategies: [
        { strategy: "default", bucket: "all", successes: 9, failures: 1, meanLatencyMs: 120 },
      ],
      selector: "thompson",
    }),
    getAgentReliability: (req) => ({
      scores: standInAgents
        .filter((a) => !req.capability || a.capabilities.includes(req.capability))
        .map((a) => ({
          agentId: a.agentId,
          capability: req.capability || a.capabilities[0],
          score: 0.97,
          observations: 40,
        })),
    }),
  };
}

export interface StandInMesh {
  upstreams: Record<Upstream, string>;
  executor: ReturnType<typeof standInExecutor>;
  close(): Promise<void>;
}

/**
 * The four stand-ins, each on its own mTLS server with its own identity from
 * `pki` (which must have issued executor, registry, planner and learning).
 */
export async function startStandInMesh(options: {
  pki: TestPki;
  authorizer: Authorizer;
  executor?: StandInExecutorOptions;
}): Promise<StandInMesh> {
  const { pki, authorizer } = options;
  const executor = standInExecutor(options.executor);
  const servers: MeshServer[] = [];
  const serve = async <S extends Parameters<MeshServer["add"]>[0]>(
    name: Upstream,
    service: S,
    impl: ServiceImpl<S>,
  ) => {
    const server = createServer({ certs: await pki.watch(name), authorizer });
    server.add(service, impl);
    await server.listen();
    servers.push(server);
    return server.address;
  };
  const upstreams: Record<Upstream, string> = {
    executor: await serve("executor", ExecutorService, executor),
    registry: await serve("registry", RegistryService, standInRegistry()),
    planner: await serve("planner", PlannerService, standInPlanner()),
    learning: await serve("learning", LearningService, standInLearning()),
  };
  return {
    upstreams,
    executor,
    async close() {
      executor.close();
      await Promise.all(servers.map((s) => s.shutdown(100)));
    },
  };
}
