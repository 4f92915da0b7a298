/**
 * Planning a goal against the playbooks, with its I/O: the playbook the
 * tenant sees (its own, kept while the store's `agentmesh_playbooks` channel
 * listens, else the built-in file; or the one-step playbook of a
 * `capability.<name>` kind), the live agents per capability (FindAgents,
 * answers that found agents reused for `agentsCacheMs`), and, when several
 * strategies can run, the learning service's choice (short deadline, falling
 * back to the playbook's first eligible strategy). The decision itself is the
 * pure `planGoal` of `domain/`.
 *
 * The planner service plans with one (PlanGoal, ExplainPlan), and so does the
 * executor for a goal whose kind has a playbook (ADR-017): the same code, so
 * the same plans and the same refusals, without the PlanGoal hop. A kind with
 * no playbook (`playbookFor` answers undefined) is the caller's to handle:
 * the planner service asks its LLM planner or answers NOT_FOUND; the executor
 * asks the planner service.
 *
 * @example
 * const planner = createGoalPlanner({ store, log, registry, learning });
 * await planner.start(); // loads the built-in playbooks, listens for changes
 * const playbook = await planner.playbookFor({ tenantId, goalKind: "summarize", input });
 * if (playbook) {
 *   const { result } = await planner.plan({ goalId, tenantId, goalKind: "summarize", input }, playbook);
 * }
 */
import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import type { Playbook } from "../../gen/agentmesh/v1/planner_pb.js";
import type { Agent, RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import type { Client } from "../../lib/rpc/index.js";
import { createNotifyChannel, type NotifyChannel, type Store } from "../../lib/store/index.js";
import { agentsCache } from "./agents-cache.js";
import { capabilityOfKind, capabilityPlaybook } from "./capability-playbook.js";
import {
  firstStrategyChooser,
  type PlanningResult,
  planCapabilities,
  planGoal,
  type StrategyChooser,
  withFallback,
} from "./domain/index.js";
import { learningChooser } from "./learning-chooser.js";
import { createPlaybookCatalog, type PlaybookCatalog } from "./playbook-catalog.js";

export interface GoalPlannerOptions {
  store: Store;
  log: Logger;
  /** Registry client (FindAgents) for live capabilities and candidate agents. */
  registry: Client<typeof RegistryService>;
  /** Learning client (ChooseStrategy); without it the first eligible strategy is used. */
  learning?: Client<typeof LearningService> | undefined;
  /** Default `Date.now`. */
  clock?: () => number;
  /** Folder of the global playbooks; default `services/planner/playbooks/`. */
  playbookDir?: string | undefined;
  /** Deadline of ChooseStrategy before falling back; default 500 ms. */
  chooseTimeoutMs?: number | undefined;
  /** Deadline of one FindAgents call; default 2000 ms. */
  registryTimeoutMs?: number | undefined;
  /**
   * How long a FindAgents answer that found agents is reused; default 1000 ms, 0 off.
   * An empty answer is never reused, so an agent that just registered is found at once.
   */
  agentsCacheMs?: number | undefined;
  /**
   * Listen for the playbook channel on a connection of its own rather than
   * one of the store's pool (a process whose pool is busy). Default false.
   */
  listenOutsidePool?: boolean;
}

/** What to plan (a goal, or with an empty `goalId` a hypothetical one). */
export interface GoalToPlan {
  goalId: string;
  tenantId: string;
  goalKind: string;
  input?: JsonObject | undefined;
  /** Strategy forced by the caller; empty or undefined lets the chooser pick. */
  strategy?: string | undefined;
}

export interface PlanOptions {
  /** A hypothetical decision (ExplainPlan): learning records no pull. Default false. */
  dryRun?: boolean;
  /** Agents asked of the registry per capability; 0 for all (ExplainPlan). Default 1. */
  agentLimit?: number;
}

export interface GoalPlanner {
  /** The tenant's playbooks (PutPlaybook, ListPlaybooks go through it). */
  readonly catalog: PlaybookCatalog;
  /** The playbook changes channel the catalog follows. */
  readonly changes: NotifyChannel;
  /**
   * The playbook of the goal's kind the tenant sees, the one-step playbook
   * of a `capability.<name>` kind, or undefined when there is none.
   * INVALID_ARGUMENT without a goal kind; UNAVAILABLE when the registry
   * cannot be asked about a capability kind.
   */
  playbookFor(
    goal: Pick<GoalToPlan, "tenantId" | "goalKind" | "input">,
  ): Promise<Playbook | undefined>;
  /**
   * Plans the goal with the playbook: the plan, how it was chosen, and the
   * live agents per capability. INVALID_ARGUMENT for an input the playbook's
   * schema refuses, NOT_FOUND for a requested strategy it lacks,
   * FAILED_PRECONDITION naming the capabilities no live agent offers,
   * UNAVAILABLE when the registry cannot be asked.
   */
  plan(
    goal: GoalToPlan,
    playbook: Playbook,
    options?: PlanOptions,
  ): Promise<{ result: PlanningResult; agents: Map<string, Agent[]> }>;
  /** Loads the built-in playbooks (INVALID_ARGUMENT naming every broken file) and listens for changes. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createGoalPlanner(options: GoalPlannerOptions): GoalPlanner {
  const { store, log } = options;
  const clock = options.clock ?? Date.now;
  const registryTimeoutMs = options.registryTimeoutMs ?? 2000;
  // Keeps the playbooks planning reads, dropped on every change (migration 0013's trigger).
  const changes = createNotifyChannel({
    store,
    name: "agentmesh_playbooks",
    log,
    ...(options.listenOutsidePool ? { outsidePool: true } : {}),
  });
  const catalog = createPlaybookCatalog({
    store,
    playbookDir: options.playbookDir,
    clock,
    changes,
  });

  // FindAgents answers kept for `agentsCacheMs`, refreshed ahead of expiry (`agents-cache.ts`).
  const agentsKept = agentsCache(
    async (capability: string, limit: number) =>
      (await options.registry.findAgents({ capability, limit }, { timeoutMs: registryTimeoutMs }))
        .agents,
    {
      ttlMs: options.agentsCacheMs ?? 1000,
      clock,
      onRefreshError: (err) => log.debug({ err }, "FindAgents refresh failed"),
    },
  );
  const findAgents = (capability: string, limit: number) => agentsKept.find(capability, limit);

  /** Live agents per capability needed by any strategy of the playbook (one FindAgents each). */
  const liveAgents = async (playbook: Playbook, limit: number): Promise<Map<string, Agent[]>> => {
    const capabilities = new Set(playbook.strategies.flatMap((s) => planCapabilities(s)));
    const entries = await Promise.all(
      [...capabilities].map(async (capability) => {
        try {
          return [capability, await findAgents(capability, limit)] as const;
        } catch (err) {
          // Without the registry nothing can be checked: say so, retryably.
          throw new MeshError(
            Code.Unavailable,
            "the registry is unavailable; cannot check capabilities",
            { cause: err },
          );
        }
      }),
    );
    return new Map(entries);
  };

  const chooserFor = (goalId: string, dryRun: boolean): StrategyChooser => {
    if (!options.learning) return firstStrategyChooser;
    return withFallback(
      learningChooser(options.learning, { goalId, dryRun, timeoutMs: options.chooseTimeoutMs }),
      {
        onFallback: (err) =>
          log.warn({ err, goalId }, "learning unavailable; using the default strategy"),
      },
    );
  };

  return {
    catalog,
    changes,
    async playbookFor(goal) {
      const capability = capabilityOfKind(goal.goalKind);
      if (capability !== undefined) {
        const agents = await findAgents(capability, 1).catch((err: unknown) => {
          throw new MeshError(Code.Unavailable, "the registry is unavailable; cannot find agents", {
            cause: err,
          });
        });
        return capabilityPlaybook(goal.tenantId, capability, agents, goal.input);
      }
      return catalog.find(goal.tenantId, goal.goalKind);
    },
    async plan(goal, playbook, planOptions = {}) {
      const agents = await liveAgents(playbook, planOptions.agentLimit ?? 1);
      const live = new Set([...agents].filter(([, a]) => a.length > 0).map(([c]) => c));
      const result = await planGoal(
        {
          goalId: goal.goalId,
          tenantId: goal.tenantId,
          goalKind: goal.goalKind,
          input: goal.input,
          strategy: goal.strategy,
        },
        {
          playbook,
          liveCapabilities: live,
          chooser: chooserFor(goal.goalId, planOptions.dryRun ?? false),
          newPlanId: randomUUID,
          now: clock,
        },
      );
      return { result, agents };
    },
    async start() {
      await catalog.load();
      // Without the channel planning still works, reading the playbook every time.
      await changes
        .start()
        .catch((err: unknown) =>
          log.warn({ err }, "playbook changes not heard; reading playbooks on every plan"),
        );
    },
    async stop() {
      await changes.stop();
    },
  };
}
