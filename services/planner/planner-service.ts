/**
 * The planner as a gRPC service: thin handlers over `domain/`. A goal kind
 * selects a playbook (the tenant's own, else the built-in file); strategies
 * whose every capability a live agent offers (asked of the registry) are the
 * candidates; the learning service picks one (short deadline, falling back to
 * the first eligible strategy); the plan is instantiated and returned.
 *
 * The optional LLM planner (off unless `AGENTMESH_LLM_PLANNER_URL` is set, see
 * `llm-planner-http.ts`) is consulted only for a goal kind with no playbook
 * the tenant can see; a playbook always wins. Its strategy is validated like
 * a playbook's, becomes a one-strategy playbook, and is planned by the same
 * `planGoal` (so the live-capability check applies twice).
 *
 * @example
 * const planner = createPlannerService({ store, log, registry, learning });
 * await planner.start(); // loads the built-in playbooks (fails on a broken file)
 * server.add(PlannerService, planner.impl);
 */
import { create, type JsonObject } from "@bufbuild/protobuf";
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import {
  ExplainPlanResponseSchema,
  type ListPlaybooksResponse,
  ListPlaybooksResponseSchema,
  type PlannerService,
  type Playbook,
  PlaybookSchema,
} from "../../gen/agentmesh/v1/planner_pb.js";
import type { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import { payloadAccess } from "../../lib/policy/payload-access.js";
import type { Decision } from "../../lib/rpc/authorizer.js";
import { preEncoded } from "../../lib/rpc/codec.js";
import type { Client, HandlerContext, ServiceImpl } from "../../lib/rpc/index.js";
import type { SecretStore } from "../../lib/secrets/secret-store.js";
import type { AuditEventInput, Store } from "../../lib/store/index.js";
import { flagOff, tenantFlags } from "../../lib/tenancy/tenant-settings.js";
import { capabilityKindPrefix, capabilityOfKind } from "./capability-playbook.js";
import { assertValidPlaybook, explainPlan, type LlmPlanner } from "./domain/index.js";
import { createGoalPlanner } from "./goal-planner.js";
import { llmPlannerFromEnv } from "./llm-planner-http.js";
import { noPlaybook, playbookToJson } from "./playbook-catalog.js";
import type { PlaybookPolicy } from "./playbook-policy.js";

export interface PlannerServiceDeps {
  store: Store;
  log: Logger;
  /** Registry client (FindAgents) for live capabilities and candidate agents. */
  registry: Client<typeof RegistryService>;
  /** Learning client (ChooseStrategy); without it the first eligible strategy is used. */
  learning?: Client<typeof LearningService>;
  /** Default `Date.now`. */
  clock?: () => number;
  /** Folder of the global playbooks; default `services/planner/playbooks/`. */
  playbookDir?: string;
  /** Deadline of ChooseStrategy before falling back; default 500 ms. */
  chooseTimeoutMs?: number;
  /** Deadline of one FindAgents call; default 2000 ms. */
  registryTimeoutMs?: number;
  /**
   * How long a FindAgents answer that found agents is reused; default 1000 ms, 0 off.
   * An empty answer is never reused, so an agent that just registered is found at once.
   */
  agentsCacheMs?: number;
  /**
   * Planner for goal kinds without a playbook. Default: `llmPlannerFromEnv(process.env)`,
   * which is off unless `AGENTMESH_LLM_PLANNER_URL` is set; `null` forces it off.
   */
  llmPlanner?: LlmPlanner | null;
  /** Holds the LLM planner's key (`llm-planner-api-key`). Default the process's secret store. */
  secrets?: Pick<SecretStore, "get">;
  /** PutPlaybook refuses steps the policy would not let the executor dispatch (`playbook-policy.ts`); none: no check. */
  playbookPolicy?: PlaybookPolicy;
  /** Who may read step inputs in clear (`lib/policy/payload-access.ts`); none: mesh services only. */
  payloadPolicy?: (input: PolicyInput) => Decision;
}

export interface PlannerServiceHandle {
  impl: ServiceImpl<typeof PlannerService>;
  /** Loads the built-in playbooks (INVALID_ARGUMENT naming every broken file). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createPlannerService(deps: PlannerServiceDeps): PlannerServiceHandle {
  const { store, log } = deps;
  const planner = createGoalPlanner({
    store,
    log,
    registry: deps.registry,
    learning: deps.learning,
    ...(deps.clock ? { clock: deps.clock } : {}),
    playbookDir: deps.playbookDir,
    chooseTimeoutMs: deps.chooseTimeoutMs,
    registryTimeoutMs: deps.registryTimeoutMs,
    agentsCacheMs: deps.agentsCacheMs,
  });
  const { catalog } = planner;
  // A cached list answers ListPlaybooks many times; its few KB of Structs are encoded once.
  const encodedLists = new WeakMap<readonly Playbook[], ListPlaybooksResponse>();
  const access = payloadAccess({
    store,
    ...(deps.payloadPolicy ? { check: deps.payloadPolicy } : {}),
  });
  const llm =
    deps.llmPlanner === undefined
      ? llmPlannerFromEnv(process.env, log.child({ component: "llm-planner" }), deps.secrets)
      : (deps.llmPlanner ?? undefined);

  /** Every capability a live agent offers, with a description (paged ListAgents). */
  const liveCapabilityList = async () => {
    const byCapability = new Map<string, string>();
    let pageToken = "";
    try {
      for (let page = 0; page < 20; page++) {
        const res = await deps.registry.listAgents(
          { pageSize: 1000, pageToken },
          { timeoutMs: deps.registryTimeoutMs ?? 2000 },
        );
        for (const agent of res.agents) {
          for (const skill of agent.card?.skills ?? []) {
            if (!byCapability.get(skill.capability)) {
              byCapability.set(skill.capability, skill.description);
            }
          }
        }
        pageToken = res.nextPageToken;
        if (!pageToken) break;
      }
    } catch (err) {
      throw new MeshError(Code.Unavailable, "the registry is unavailable; cannot list agents", {
        cause: err,
      });
    }
    return [...byCapability].map(([capability, description]) => ({ capability, description }));
  };

  /** The tenant's playbook for the kind; else, when the LLM planner is on, one it proposes. */
  const playbookFor = async (req: {
    tenantId: string;
    goalKind: string;
    input?: JsonObject | undefined;
  }): Promise<Playbook> => {
    const found = await planner.playbookFor(req);
    if (found) return found;
    const notFound = noPlaybook(req.goalKind);
    if (!llm) throw notFound;
    // A tenant may be switched off the LLM planner (AdminService UpdateTenant).
    const flag = await store.flags.resolve(tenantFlags.llmPlanner, {
      tenantId: req.tenantId,
      goalKind: req.goalKind,
    });
    if (flagOff(flag?.value)) throw notFound;
    const strategy = await llm.propose({
      goalKind: req.goalKind,
      input: req.input,
      capabilities: await liveCapabilityList(),
    });
    log.info(
      { kind: req.goalKind, steps: strategy.steps.length },
      "no playbook; llm planner proposed a strategy",
    );
    return create(PlaybookSchema, {
      tenantId: req.tenantId,
      goalKind: req.goalKind,
      description: "proposed by the llm planner",
      strategies: [strategy],
    });
  };

  const plan = async (
    req: {
      goalId: string;
      tenantId: string;
      goalKind: string;
      input?: JsonObject | undefined;
      strategy?: string;
    },
    dryRun: boolean,
    agentLimit: number,
  ) => {
    if (!req.tenantId) throw new MeshError(Code.InvalidArgument, "tenant_id is required");
    return planner.plan(req, await playbookFor(req), { dryRun, agentLimit });
  };

  const actor = (ctx: HandlerContext) =>
    ctx.principal ? `${ctx.principal.tenantId}/${ctx.principal.subject}` : ctx.peer.spiffeId;

  const audit = (event: AuditEventInput) =>
    store.audit.append(event).catch((err: unknown) => log.warn({ err }, "audit append failed"));

  const impl: ServiceImpl<typeof PlannerService> = {
    async planGoal(req, ctx) {
      if (!req.goalId) throw new MeshError(Code.InvalidArgument, "goal_id is required");
      const { result } = await plan(req, false, 1);
      ctx.log.info(
        {
          goalId: req.goalId,
          kind: req.goalKind,
          strategy: result.plan.strategy,
          selector: result.selector,
        },
        "goal planned",
      );
      return { plan: result.plan };
    },

    // The plan's step inputs are the playbook's templates filled in with the caller's
    // input: part the caller's own, part the playbook's literals. Those are the tenant's
    // like any playbook's, so a principal that may not submit the tenant's goals gets
    // every step input redacted, as ListPlaybooks and GetPlaybook would show it them.
    async explainPlan(req, ctx) {
      const { result, agents } = await plan({ ...req, goalId: "" }, true, 0);
      // A fresh message (the plan's steps are copies of the playbook's): redacted in place.
      const explained = explainPlan(result, (capability) => agents.get(capability) ?? []);
      const [shown] = await access.read(ctx, req.tenantId, ExplainPlanResponseSchema, [explained], {
        kind: "plan",
        ids: [req.goalKind],
      });
      return shown ?? explained;
    },

    async listPlaybooks(req, ctx) {
      const playbooks = await catalog.list(req.tenantId);
      const shown = await access.read(ctx, req.tenantId, PlaybookSchema, playbooks, {
        kind: "playbook",
        ids: playbooks.map((p) => p.goalKind),
        shared: true,
      });
      // The list, or its redacted copy, is kept as long as the catalog keeps it: encoded once.
      let response = encodedLists.get(shown);
      if (response === undefined) {
        response = preEncoded(ListPlaybooksResponseSchema, { playbooks: shown });
        encodedLists.set(shown, response);
      }
      return response;
    },

    async getPlaybook(req, ctx) {
      const playbook = await catalog.get(req.tenantId, req.goalKind);
      const [shown] = await access.read(ctx, req.tenantId, PlaybookSchema, [playbook], {
        kind: "playbook",
        ids: [playbook.goalKind],
        shared: true,
      });
      return { playbook: shown ?? playbook };
    },

    async putPlaybook(req, ctx) {
      if (!req.tenantId) throw new MeshError(Code.InvalidArgument, "tenant_id is required");
      if (!req.playbook) throw new MeshError(Code.InvalidArgument, "playbook is required");
      const playbook = req.playbook;
      playbook.tenantId = req.tenantId;
      assertValidPlaybook(playbook);
      if (capabilityOfKind(playbook.goalKind) !== undefined) {
        throw new MeshError(
          Code.InvalidArgument,
          `goal kinds starting "${capabilityKindPrefix}" run one capability alone; a playbook cannot take one`,
          { retryable: false },
        );
      }
      deps.playbookPolicy?.(req.tenantId, playbook);
      const stored = await store
        .tenant(req.tenantId)
        .playbooks.put(playbook.goalKind, playbookToJson(playbook));
      await audit({
        actor: actor(ctx),
        action: "playbook.put",
        resource: `playbook/${req.tenantId}/${playbook.goalKind}`,
        tenantId: req.tenantId,
        details: {
          version: stored.version,
          strategies: playbook.strategies.map((s) => s.name).join(","),
        },
      });
      catalog.forget(req.tenantId);
      playbook.version = stored.version;
      return { playbook };
    },

    async deletePlaybook(req, ctx) {
      if (!req.tenantId) throw new MeshError(Code.InvalidArgument, "tenant_id is required");
      if (!req.goalKind) throw new MeshError(Code.InvalidArgument, "goal_kind is required");
      const repo = store.tenant(req.tenantId).playbooks;
      if (!(await repo.find(req.goalKind)) && (await catalog.globals()).has(req.goalKind)) {
        throw new MeshError(
          Code.FailedPrecondition,
          `playbook "${req.goalKind}" is global (a built-in file) and cannot be deleted`,
        );
      }
      await repo.delete(req.goalKind);
      catalog.forget(req.tenantId);
      await audit({
        actor: actor(ctx),
        action: "playbook.deleted",
        resource: `playbook/${req.tenantId}/${req.goalKind}`,
        tenantId: req.tenantId,
      });
      return {};
    },
  };

  return {
    impl,
    start: () => planner.start(),
    stop: () => planner.stop(),
  };
}
