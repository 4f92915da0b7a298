/**
 * The ExecutorService: thin adapters from the RPCs to the goal engine and the
 * store. SubmitGoal validates, persists (idempotently), records and plans;
 * GetGoal / ListGoals read; CancelGoal feeds the reducer; WatchGoal streams
 * the stored history and then live events from the bus.
 *
 * Acceptance: a goal is planned before anything is stored; a goal whose kind
 * has a playbook is planned in this process with the planner's code, any other
 * by the planner service (ADR-017, `goal-planning.ts`). When planning refuses
 * it (INVALID_ARGUMENT, NOT_FOUND for an unknown kind), SubmitGoal fails with
 * the planner's code and stores nothing; when the bus or registry (or, for a
 * kind without a playbook, the planner) is unreachable it fails with
 * UNAVAILABLE and stores nothing, so the same request (same idempotency key)
 * can be sent again. A goal needing a
 * capability no live agent offers right now is accepted PENDING and waits for
 * the agents (a `waitingForAgents` event) for `agentWaitMs` (default 2 min,
 * `AGENTMESH_EXECUTOR_AGENT_WAIT_MS`), then fails with that reason.
 *
 * @example
 * const executor = createExecutorService(deps);
 * server.add(ExecutorService, executor.impl);
 * await executor.start();
 */
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import type { GoalEvent } from "../../gen/agentmesh/v1/executor_pb.js";
import {
  ExecutorService,
  GoalEventSchema,
  GoalSchema,
} from "../../gen/agentmesh/v1/executor_pb.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { settings } from "../../lib/config/settings.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { parseSpiffeId } from "../../lib/identity/spiffe.js";
import type { Logger } from "../../lib/log/logger.js";
import type { ComponentDefinition, ServiceHandle } from "../../lib/mesh/start-component.js";
import type { PolicyInput } from "../../lib/policy/input.js";
import { payloadAccess } from "../../lib/policy/payload-access.js";
import type { Decision } from "../../lib/rpc/authorizer.js";
import { spanKey } from "../../lib/rpc/context-keys.js";
import type { HandlerContext } from "../../lib/rpc/handler.js";
import type { GoalStatusName } from "../../lib/store/records.js";
import type { Store } from "../../lib/store/store.js";
import { checkTenantId } from "../../lib/store/tenant-repository.js";
import { goalSli } from "../../lib/telemetry/slis.js";
import { createGoalPlanner } from "../planner/goal-planner.js";
import { type DispatchPolicy, dispatchPolicy } from "./dispatch-policy.js";
import { purgeErasedTenantEvents } from "./erased-tenant-events.js";
import { GoalEngine, type GoalEngineDeps, type GoalEngineOptions } from "./goal-engine.js";
import { goalPlanning } from "./goal-planning.js";
import { eventOf, loadGoal } from "./goal-store.js";
import { goalMessage, goalWithSteps } from "./goal-wire.js";
import { policyResultAuthority, resultsRefusedCounter } from "./result-authority.js";

export interface ExecutorServiceDeps {
  store: Store;
  bus: JobBus;
  clients: GoalEngineDeps["clients"];
  log: Logger;
  instanceId: string;
  options?: ExecutorServiceOptions;
  /** Results bound to identity on an authenticated bus; default none. */
  resultBinding?: GoalEngineDeps["resultBinding"];
  /** Policy at dispatch (see `dispatch-policy.ts`); none: every job is published. */
  dispatchPolicy?: DispatchPolicy;
  /** Who may read sensitive fields in clear (`lib/policy/payload-access.ts`); none: mesh services only. */
  payloadPolicy?: (input: PolicyInput) => Decision;
  /** Finished goals counted and timed (the SLIs); default nowhere. */
  sli?: GoalEngineDeps["sli"];
}

export interface ExecutorServiceOptions extends GoalEngineOptions {
  /** WatchGoal re-reads the store this often in case a live event was lost. Default 2 s. */
  watchPollMs?: number;
  /**
   * Plan every goal through the planner service's PlanGoal. Default false:
   * a goal whose kind has a playbook is planned in this process (ADR-017).
   */
  remotePlanning?: boolean;
}

export function createExecutorService(
  deps: ExecutorServiceDeps,
): ServiceHandle<typeof ExecutorService> & { engine: GoalEngine } {
  const { store, bus, log } = deps;
  // Playbook goals are planned here with the planner's code; other kinds ask the planner.
  const planner = deps.options?.remotePlanning
    ? undefined
    : createGoalPlanner({
        store,
        log,
        registry: deps.clients.registry,
        learning: deps.clients.learning,
        // The executor's pool carries every goal's writes: the LISTEN takes no connection of it.
        listenOutsidePool: true,
      });
  const engine = new GoalEngine({
    store,
    bus,
    clients: deps.clients,
    log,
    instanceId: deps.instanceId,
    ...(deps.options ? { options: deps.options } : {}),
    ...(deps.resultBinding ? { resultBinding: deps.resultBinding } : {}),
    ...(deps.dispatchPolicy ? { dispatchPolicy: deps.dispatchPolicy } : {}),
    ...(deps.sli ? { sli: deps.sli } : {}),
    planGoal: goalPlanning({
      planner,
      remote: deps.clients.planner,
      log,
      timeoutMs: deps.options?.planTimeoutMs ?? 10_000,
    }),
  });
  const watchPollMs = deps.options?.watchPollMs ?? 2_000;
  const access = payloadAccess({
    store,
    ...(deps.payloadPolicy ? { check: deps.payloadPolicy } : {}),
  });

  let stopPurging: (() => void) | undefined;
  return {
    engine,
    async start() {
      // Before the engine: its ticker plans goals left unplanned.
      await planner?.start();
      await engine.start();
      stopPurging = purgeErasedTenantEvents({ store, bus, log });
    },
    async stop() {
      stopPurging?.();
      await engine.stop();
      await planner?.stop();
    },
    impl: {
      async submitGoal(req, ctx) {
        const tenantId = checkTenantId(req.tenantId);
        // The kind, sizes and labels were checked against the contract's rules (serverValidate).
        const kind = req.kind;
        let deadlineMs: number | undefined;
        if (req.deadline) {
          deadlineMs = timestampMs(req.deadline);
          if (!(deadlineMs > Date.now())) {
            throw new MeshError(Code.InvalidArgument, "deadline is not in the future");
          }
        }
        const input: JsonObject = req.input ?? {};
        const nonFinite = nonFiniteNumber(input, "input");
        if (nonFinite) {
          // Protobuf carries NaN and Infinity; JSON (agents, the store, Connect clients) cannot.
          throw new MeshError(Code.InvalidArgument, `${nonFinite} is not a finite number`);
        }
        const actor = actorOf(ctx);
        const spanId = ctx.values.get(spanKey)?.spanId;
        const submitted = await engine.submit({
          tenantId,
          kind,
          input,
          actor,
          submittedBy: actor,
          ...(ctx.principal?.roles.length ? { submitterRoles: [...ctx.principal.roles] } : {}),
          priority: req.priority,
          ...(deadlineMs !== undefined ? { deadlineMs } : {}),
          ...(req.idempotencyKey ? { idempotencyKey: req.idempotencyKey } : {}),
          ...(Object.keys(req.labels).length > 0 ? { labels: { ...req.labels } } : {}),
          ...(req.strategy ? { strategy: req.strategy } : {}),
          ...(ctx.traceId ? { traceId: ctx.traceId } : {}),
          // The server span of this call: the goal's jobs and child goals continue from it.
          ...(spanId ? { traceSpanId: spanId } : {}),
        });
        return { goal: goalWithSteps(submitted.loaded), created: submitted.created };
      },

      async getGoal(req, ctx) {
        const tenant = store.tenant(req.tenantId);
        requireGoalId(req.goalId);
        const goal = goalWithSteps(await loadGoal(tenant, req.goalId));
        const [shown] = await access.read(ctx, tenant.tenantId, GoalSchema, [goal], {
          kind: "goal",
          ids: [goal.goalId],
        });
        return { goal: shown };
      },

      async listGoals(req, ctx) {
        const tenant = store.tenant(req.tenantId);
        const statuses = req.statuses.map((s) => {
          const name = GoalStatus[s];
          if (name === undefined || s === GoalStatus.UNSPECIFIED) {
            throw new MeshError(Code.InvalidArgument, `invalid goal status ${s}`);
          }
          return name as GoalStatusName;
        });
        const page = await tenant.goals.list({
          statuses,
          ...(req.kind ? { kind: req.kind } : {}),
          ...(req.idempotencyKey ? { idempotencyKey: req.idempotencyKey } : {}),
          ...(req.createdAfter ? { createdAfter: timestampDate(req.createdAfter) } : {}),
          ...(req.createdBefore ? { createdBefore: timestampDate(req.createdBefore) } : {}),
          pageSize: req.pageSize,
          ...(req.pageToken ? { pageToken: req.pageToken } : {}),
        });
        const goals = await access.read(
          ctx,
          tenant.tenantId,
          GoalSchema,
          page.goals.map((g) => goalMessage(g)),
          { kind: "goal", ids: page.goals.map((g) => g.id) },
        );
        return { goals, nextPageToken: page.nextPageToken };
      },

      async cancelGoal(req, ctx) {
        const tenantId = checkTenantId(req.tenantId);
        requireGoalId(req.goalId);
        const { changed, after } = await engine.cancel(tenantId, req.goalId, req.reason);
        if (changed) {
          await store.audit.append({
            actor: actorOf(ctx),
            action: "goal.cancelled",
            resource: `goal/${req.goalId}`,
            tenantId,
            details: { reason: req.reason },
          });
        }
        return { goal: goalWithSteps(after) };
      },

      async *watchGoal(req, ctx) {
        const tenantId = checkTenantId(req.tenantId);
        requireGoalId(req.goalId);
        const tenant = store.tenant(tenantId);
        await tenant.goals.get(req.goalId);
        const redact = await access.watch(ctx, tenantId, GoalEventSchema, {
          kind: "goal",
          ids: [req.goalId],
        });
        // Subscribe before reading the history so nothing falls in between.
        const feed = await bus.subscribeGoalEvents(tenantId, req.goalId);
        let last = Number(req.afterSequence);
        let finished = false;
        /** Everything the store has after `last`. */
        const fromStore = async (): Promise<GoalEvent[]> => {
          const out: GoalEvent[] = [];
          for (;;) {
            const rows = await tenant.events.list(req.goalId, {
              afterSequence: last + out.length,
              limit: 500,
            });
            out.push(...rows.map((r) => eventOf(r.data)));
            if (rows.length < 500) return out;
          }
        };
        const aborted = new Promise<"aborted">((resolve) => {
          if (ctx.signal.aborted) resolve("aborted");
          ctx.signal.addEventListener("abort", () => resolve("aborted"), { once: true });
        });
        const live = feed[Symbol.asyncIterator]();
        try {
          for (const e of await fromStore()) {
            last = Number(e.sequence);
            redact(e);
            yield { event: e };
            if (e.kind.case === "finished") return;
          }
          let pending = live.next();
          while (!finished && !ctx.signal.aborted) {
            let timer: NodeJS.Timeout | undefined;
            const poll = new Promise<"poll">((resolve) => {
              timer = setTimeout(() => resolve("poll"), watchPollMs);
            });
            const r = await Promise.race([pending, poll, aborted]);
            clearTimeout(timer);
            if (r === "aborted") return;
            let batch: GoalEvent[];
            if (r === "poll") {
              batch = await fromStore();
            } else {
              if (r.done) throw new MeshError(Code.Unavailable, "the event feed closed");
              pending = live.next();
              const seq = Number(r.value.sequence);
              if (seq <= last) continue;
              // A gap: some event was not published (or not yet seen): the store has it.
              batch = seq === last + 1 ? [r.value] : await fromStore();
            }
            for (const e of batch) {
              if (Number(e.sequence) <= last) continue;
              last = Number(e.sequence);
              redact(e);
              yield { event: e };
              if (e.kind.case === "finished") {
                finished = true;
                break;
              }
            }
          }
        } finally {
          // Not awaited: closing a JetStream feed whose iterator never ran can wait indefinitely.
          void feed.stop().catch(() => undefined);
        }
      },
    },
  };
}

function requireGoalId(goalId: string): void {
  if (goalId === "" || goalId.length > 128) {
    throw new MeshError(Code.InvalidArgument, "goal_id is required (at most 128 characters)");
  }
}

/** The audit actor: the delegated principal when present, else the calling service. */
function actorOf(ctx: HandlerContext): string {
  const p = ctx.principal;
  return p ? `${p.tenantId}/${p.subject}` : ctx.peer.spiffeId;
}

/** The executor as a mesh component (`agentmesh serve executor`, `agentmesh dev`). */
export const executorComponent: ComponentDefinition<typeof ExecutorService> = {
  name: "executor",
  service: ExecutorService,
  create: (deps) =>
    createExecutorService({
      store: deps.store,
      bus: deps.bus,
      clients: deps.clients,
      log: deps.log,
      instanceId: deps.instanceId,
      options: executorOptionsFromEnv(),
      resultBinding: {
        mayServe: policyResultAuthority(deps.runtime.authorizer, deps.runtime.spiffeId),
        spiffeIdOf: deps.runtime.spiffeId,
        onRefused: resultsRefusedCounter(deps.metrics.registry),
      },
      dispatchPolicy: dispatchPolicy({
        check: deps.runtime.policyCheck("executor", deps.instanceId),
        executor: parseSpiffeId(deps.spiffeId),
      }),
      payloadPolicy: deps.runtime.policyCheck("executor", deps.instanceId, { sampleDenials: true }),
      sli: goalSli(deps.metrics.registry),
    }),
};

/**
 * Tuning from the environment: `AGENTMESH_EXECUTOR_TICK_MS`,
 * `AGENTMESH_EXECUTOR_LEASE_MS`, `AGENTMESH_EXECUTOR_PLAN_GRACE_MS`,
 * `AGENTMESH_EXECUTOR_REDISPATCH_MS`, `AGENTMESH_EXECUTOR_AGENT_WAIT_MS`,
 * `AGENTMESH_EXECUTOR_REMOTE_PLANNING`.
 */
export function executorOptionsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): ExecutorServiceOptions {
  const n = (name: string) => {
    const v = Number(env[name]);
    return env[name] && Number.isFinite(v) && v > 0 ? v : undefined;
  };
  const out: ExecutorServiceOptions = {};
  const tick = n("AGENTMESH_EXECUTOR_TICK_MS");
  if (tick) out.tickMs = tick;
  const lease = n("AGENTMESH_EXECUTOR_LEASE_MS");
  if (lease) out.leaseMs = lease;
  const grace = n("AGENTMESH_EXECUTOR_PLAN_GRACE_MS");
  if (grace) out.planGraceMs = grace;
  const agentWait = n("AGENTMESH_EXECUTOR_AGENT_WAIT_MS");
  if (agentWait) out.agentWaitMs = agentWait;
  const redispatch = n("AGENTMESH_EXECUTOR_REDISPATCH_MS");
  if (redispatch) out.due = { redispatchCheckMs: redispatch };
  if (settings.executorRemotePlanning.read(env)) out.remotePlanning = true;
  return out;
}

/** The path of the first NaN or ±Infinity inside a JSON value, if any. */
function nonFiniteNumber(value: JsonValue, path: string): string | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? undefined : path;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nonFiniteNumber(value[i] as JsonValue, `${path}[${i}]`);
      if (found) return found;
    }
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const found = nonFiniteNumber(v as JsonValue, `${path}.${k}`);
      if (found) return found;
    }
  }
  return undefined;
}
