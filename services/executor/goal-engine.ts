/**
 * The executor's engine: it turns requests, agent results and due timers into
 * inputs of the pure goal reducer, persists each transition under the goal's
 * optimistic lock (retrying on ABORTED with a fresh load), and then carries
 * out the transition's commands — publish jobs, events and cancel signals,
 * start and cancel child goals, report the outcome, notify a parent goal.
 *
 * Nothing lives only in memory. A transition is committed before its
 * commands run; if the process dies in between, the step's due time brings
 * any replica's ticker back to it: an undispatched job is re-published under
 * its deterministic attempt id (the bus drops the duplicate if the first one
 * made it), a sub-goal step re-checks its child, a timeout or retry fires.
 *
 * Helpers with one job each: `ResultBatcher` (results that arrive together),
 * `DueTicker` (claims due steps and unplanned goals), `ChildGoals` (goals run
 * as a step of another), `DispatchRetry` (jobs NATS could not take while it was
 * away, published as soon as it is back). All time comes from the injected `Clock`.
 *
 * @example
 * const engine = new GoalEngine({ store, bus, clients, log, instanceId });
 * await engine.start(); // results consumer + ticker
 * const { loaded, created } = await engine.submit({ tenantId, kind, input, actor });
 */
import { randomUUID } from "node:crypto";
import { clone, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { GoalStatus, StepStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { type StepJob, StepJobSchema, type StepResult } from "../../gen/agentmesh/v1/jobs_pb.js";
import type { LearningService } from "../../gen/agentmesh/v1/learning_pb.js";
import type { Plan, PlannerService } from "../../gen/agentmesh/v1/planner_pb.js";
import type { RegistryService } from "../../gen/agentmesh/v1/registry_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import type { JobBus, Subscription } from "../../lib/bus/job-bus.js";
import { Code, isMeshError, MeshError } from "../../lib/errors/mesh-error.js";
import type { Logger } from "../../lib/log/logger.js";
import { decisionContext } from "../../lib/plan/decision-context.js";
import type { Client } from "../../lib/rpc/client.js";
import { goalSubmittedEvent } from "../../lib/store/audit-log.js";
import type { GoalCreated, GoalCreation, GoalUpdate } from "../../lib/store/goal-repository.js";
import { GroupCommit } from "../../lib/store/group-commit.js";
import type { GoalRecord } from "../../lib/store/records.js";
import type { Store } from "../../lib/store/store.js";
import { untilStored } from "../../lib/store/until-stored.js";
import type { GoalEnd, GoalSli } from "../../lib/telemetry/slis.js";
import { mark } from "../../lib/telemetry/stage-trace.js";
import {
  defaultAgentWaitMs,
  missingCapabilitiesOf,
  waitingTransition,
  waitUntil,
} from "./agent-wait.js";
import { CapabilityLimiter, noTurnResult, rateLimitedResult } from "./capability-limit.js";
import { CapabilityTools } from "./capability-tools.js";
import { ChildGoals } from "./child-goals.js";
import { type Clock, sleep, systemClock } from "./clock.js";
import { type DispatchPolicy, deniedResult } from "./dispatch-policy.js";
import { DispatchRetry } from "./dispatch-retry.js";
import {
  attemptRateLimited,
  type ErrorData,
  type GoalCommand,
  type GoalInput,
  type GoalState,
  goalOutcome,
  initGoal,
  isStepTerminal,
  isTerminal,
  recoverGoal,
  reduceGoal,
} from "./domain/index.js";
import { DueTicker } from "./due-ticker.js";
import { goalPlanning, type PlanGoal } from "./goal-planning.js";
import {
  commitTransition,
  createdGoal,
  type DueTimes,
  defaultDueTimes,
  defaultGoalDeadlineMs,
  goalCreation,
  type LoadedGoal,
  loadGoal,
  loadGoals,
  prepareTransition,
  stepDueAt,
} from "./goal-store.js";
import { type ResultAuthority, resultRefusal } from "./result-authority.js";
import { ResultBatcher } from "./result-batcher.js";
import { overQuotaResult, TenantGate } from "./tenant-gate.js";
import { type VersionRouter, versionRouter } from "./version-routing.js";

export interface GoalEngineOptions {
  /** How often each replica claims due steps and unplanned goals. Default 200 ms. */
  tickMs?: number;
  /** A PENDING goal younger than this is left to the SubmitGoal call planning it. Default 5 s. */
  planGraceMs?: number;
  /** Lease on a claimed step or goal (then another replica may take it). Default 15 s. */
  leaseMs?: number;
  /**
   * Results processed at once by this replica. Default 128: a result holds its
   * slot until its transition's group commit is back, so the slots bound both
   * how many results one statement carries and the result rate (slots ÷ the
   * statement's time); twice the group commit's batch lets the next batch
   * fill while one is written.
   */
  resultConcurrency?: number;
  /** Deadline of the planner call. Default 10 s. */
  planTimeoutMs?: number;
  /** Re-dispatch and sub-goal check intervals. */
  due?: Partial<DueTimes>;
  /** Deadline of a goal submitted without one. Default 10 min. */
  defaultDeadlineMs?: number;
  /**
   * How long an accepted goal waits for agents when no live agent offers a
   * capability it needs, before it fails with that reason. Default 2 min.
   */
  agentWaitMs?: number;
}

export interface GoalEngineDeps {
  store: Store;
  bus: JobBus;
  clients: {
    planner: Client<typeof PlannerService>;
    registry: Client<typeof RegistryService>;
    learning?: Client<typeof LearningService>;
  };
  log: Logger;
  /** Lease owner name of this replica. */
  instanceId: string;
  options?: GoalEngineOptions;
  /** Time and timers. Default the wall clock. */
  clock?: Clock;
  /** Asked before each job is published (policy at dispatch); none: every job is published. */
  dispatchPolicy?: DispatchPolicy;
  /** Results bound to identity (see `result-authority.ts`); enforced when the bus is authenticated. */
  resultBinding?: ResultBinding;
  /**
   * How goals are planned (`goal-planning.ts`); default a PlanGoal call to
   * `clients.planner` for every goal.
   */
  planGoal?: PlanGoal;
  /** Where finished goals are counted and timed (the SLIs); default nowhere. */
  sli?: GoalSli;
}

export interface ResultBinding {
  /** Whether an identity may report results of a capability (the policy's grant). */
  mayServe: ResultAuthority;
  /** The SPIFFE ID of an identity name, for the audit record. */
  spiffeIdOf(name: string): string;
  /** Called once per refused result (a metric). */
  onRefused?(reason: string): void;
}

/** A validated goal to create. */
export interface NewGoalRequest {
  tenantId: string;
  kind: string;
  input: JsonObject;
  idempotencyKey?: string;
  priority?: number;
  deadlineMs?: number;
  labels?: Record<string, string>;
  strategy?: string;
  parentGoalId?: string;
  parentStepId?: string;
  traceId?: string;
  /** The span the goal's trace continues from (with `traceId`). */
  traceSpanId?: string;
  /** Who submitted, for the audit log. */
  actor: string;
  /**
   * Who the goal acts for, kept with it and shown to the policy at every
   * dispatch: the submitter's `actor` for a goal from outside, the parent's
   * for a child goal.
   */
  submittedBy?: string;
  /** The roles of the principal the goal acts for, as at submission (the policy's scopes at dispatch). */
  submitterRoles?: string[];
}

export interface Submitted {
  loaded: LoadedGoal;
  created: boolean;
}

/** What the engine's helpers (child goals) may do with goals. */
export interface GoalOperations {
  submit(req: NewGoalRequest): Promise<Submitted>;
  apply(
    tenantId: string,
    goalId: string,
    inputs: (state: GoalState, now: number) => GoalInput[],
    known?: LoadedGoal,
  ): Promise<Applied>;
  cancel(tenantId: string, goalId: string, reason: string): Promise<Applied>;
}

export interface Applied {
  state: GoalState;
  /** The goal the transition started from. */
  loaded: LoadedGoal;
  /** The goal as stored afterwards (`loaded` when nothing changed). */
  after: LoadedGoal;
  changed: boolean;
}

/** How long a finished goal's outcome waits for a lost NATS connection to come back. */
const outcomePublishWaitMs = 5 * 60_000;

/** Goal events leave without a PubAck wait (see `#run`). */
const noPubAck = { awaitAck: false } as const;

/** How often a step whose job no agent took asks again whether one is live. */
const agentRecheckMs = 2_000;

/** How far back a goal's events are searched for its wait for agents. */
const recentEventsScanned = 500;

/** Unfinished goals `#recent` remembers at most; finished ones are dropped at once. */
const maxRecentGoals = 2_000;

/** The SLI status of each final goal status. */
const goalEnds: Partial<Record<GoalStatus, GoalEnd>> = {
  [GoalStatus.SUCCEEDED]: "succeeded",
  [GoalStatus.FAILED]: "failed",
  [GoalStatus.CANCELLED]: "cancelled",
};

/** Planner answers that mean "this goal cannot be planned": refused, or (accepted) failed. */
const rejectionCodes = new Set<Code>([
  Code.InvalidArgument,
  Code.FailedPrecondition,
  Code.NotFound,
  Code.OutOfRange,
  Code.PermissionDenied,
]);

export class GoalEngine implements GoalOperations {
  readonly #store: Store;
  readonly #resultBinding: ResultBinding | undefined;
  readonly #bus: JobBus;
  readonly #clients: GoalEngineDeps["clients"];
  readonly #log: Logger;
  readonly #owner: string;
  readonly #clock: Clock;
  readonly #resultConcurrency: number;
  readonly #planGoal: PlanGoal;
  readonly #due: DueTimes;
  readonly #defaultDeadlineMs: number;
  readonly #agentWaitMs: number;
  readonly #batcher: ResultBatcher;
  /** Goal creations waiting together, written in one statement (group commit). */
  readonly #creations: GroupCommit<GoalCreation, GoalCreated>;
  /** Transitions of different goals waiting together, written in one statement (group commit). */
  readonly #transitions: GroupCommit<GoalUpdate, GoalRecord>;
  readonly #ticker: DueTicker;
  readonly #children: ChildGoals;
  readonly #dispatchPolicy: DispatchPolicy | undefined;
  /** Jobs the bus could not take while NATS was away, published again once it is back. */
  readonly #dispatchRetry: DispatchRetry;
  readonly #tenants: TenantGate;
  /** Each capability's declared scope, side effect and rate limit (the tool named like it). */
  readonly #capabilityTools: CapabilityTools;
  /** Each capability's rate limit per tenant, shared by every replica. */
  readonly #capabilityLimiter: CapabilityLimiter;
  readonly #sli: GoalSli | undefined;
  /** Pins the jobs of steps with a version range to one agent version (ADR-015). */
  readonly #versions: VersionRouter;
  #results: Subscription | undefined;
  /** Aborted by `stop()`: results waiting out a database outage go back to the bus. */
  readonly #stopping = new AbortController();
  /**
   * Unfinished goals as this replica last saved them, so the next transition
   * (usually the agent's result) starts without loading the goal. Safe when
   * stale: every write checks the goal's version and last event sequence and
   * each step's version, so another replica's change means ABORTED and a
   * fresh load.
   */
  readonly #recent = new Map<string, LoadedGoal>();
  /** What this replica did, for tests and load checks; `resultBatches`: results applied together. */
  readonly stats = {
    resultsApplied: 0,
    transitions: 0,
    ticks: 0,
    resultBatches: 0,
    /** Statements that created more than one goal. */
    creationBatches: 0,
    /** Statements that saved transitions of more than one goal. */
    transitionBatches: 0,
  };

  constructor(deps: GoalEngineDeps) {
    const o = deps.options ?? {};
    this.#store = deps.store;
    this.#resultBinding = deps.resultBinding;
    this.#bus = deps.bus;
    this.#clients = deps.clients;
    this.#log = deps.log;
    this.#owner = deps.instanceId;
    this.#clock = deps.clock ?? systemClock;
    this.#resultConcurrency = o.resultConcurrency ?? 128;
    this.#planGoal =
      deps.planGoal ??
      goalPlanning({
        remote: deps.clients.planner,
        log: deps.log,
        timeoutMs: o.planTimeoutMs ?? 10_000,
      });
    this.#due = { ...defaultDueTimes, ...o.due };
    this.#defaultDeadlineMs = o.defaultDeadlineMs ?? defaultGoalDeadlineMs;
    this.#agentWaitMs = o.agentWaitMs ?? defaultAgentWaitMs;
    this.#versions = versionRouter(async (capability) => {
      const res = await this.#clients.registry.findAgents(
        { capability, limit: 100 },
        { timeoutMs: 2_000 },
      );
      return res.agents;
    });
    this.#batcher = new ResultBatcher({
      applyOne: (result, known) => this.#applyResult(result, known),
      recall: (tenantId, goalId) => this.#recall(tenantId, goalId),
      loadGoals: (tenantId, ids) => loadGoals(this.#store.tenant(tenantId), ids),
      stats: this.stats,
    });
    this.#creations = new GroupCommit<GoalCreation, GoalCreated>(
      (batch) => {
        for (const b of batch) mark(b.id, "x.createWrite");
        return this.#store.createGoals(batch);
      },
      {
        onBatch: (size) => {
          if (size > 1) this.stats.creationBatches++;
        },
      },
    );
    this.#transitions = new GroupCommit<GoalUpdate, GoalRecord>(
      (batch) => {
        for (const b of batch) mark(b.id, "x.transWrite");
        return this.#store.updateGoals(batch);
      },
      {
        // Two transitions of one goal never share a statement: the second waits for the next.
        key: (u) => `${u.tenantId}/${u.id}`,
        onBatch: (size) => {
          if (size > 1) this.stats.transitionBatches++;
        },
      },
    );
    this.#ticker = new DueTicker({
      store: this.#store,
      owner: this.#owner,
      clock: this.#clock,
      log: this.#log,
      tickMs: o.tickMs ?? 200,
      leaseMs: o.leaseMs ?? 15_000,
      planGraceMs: o.planGraceMs ?? 5_000,
      fireDue: (tenantId, goalId, steps) => this.#fireDue(tenantId, goalId, steps),
      planPending: (goal) => this.#planPending(goal),
      stats: this.stats,
    });
    this.#children = new ChildGoals({ store: this.#store, log: this.#log, goals: this });
    this.#dispatchPolicy = deps.dispatchPolicy;
    this.#dispatchRetry = new DispatchRetry({
      bus: this.#bus,
      clock: this.#clock,
      log: this.#log,
      stillWanted: (job) => this.#attemptDispatched(job),
    });
    this.#tenants = new TenantGate({ store: this.#store });
    this.#capabilityTools = new CapabilityTools({ store: this.#store });
    this.#capabilityLimiter = new CapabilityLimiter({
      store: this.#store,
      now: () => this.#clock.now(),
    });
    this.#sli = deps.sli;
  }

  /** Starts consuming results and ticking. */
  async start(): Promise<void> {
    this.#results = await this.#bus.consumeResults({
      concurrency: this.#resultConcurrency,
      handler: async (d) => {
        const r = d.data;
        mark(r.goalId, "x.resultIn");
        if (!r.goalId || !r.tenantId) {
          d.term();
          return;
        }
        try {
          if (await this.#refusedPublisher(r, d.subject)) {
            d.term();
            return;
          }
          // A result is an effect already done: through a database outage it waits
          // to be applied rather than be dead-lettered and its step run again.
          await untilStored(() => this.#batcher.add(r), {
            working: () => d.working(),
            signal: this.#stopping.signal,
            log: this.#log,
          });
          this.stats.resultsApplied++;
        } catch (err) {
          // A result for a goal this mesh does not know can never apply.
          if (
            isMeshError(err) &&
            (err.code === Code.NotFound || err.code === Code.InvalidArgument)
          ) {
            this.#log.warn(
              { goalId: r.goalId, attemptId: r.attemptId },
              "result for unknown goal dropped",
            );
            d.term();
            return;
          }
          this.#log.warn({ err, goalId: r.goalId }, "result not applied yet; redelivering");
          throw err;
        }
      },
    });
    this.#ticker.start();
  }

  /**
   * On a bus whose server vouches for publishers, refuses (audits and counts)
   * a result whose publisher the policy does not grant the step's capability.
   */
  async #refusedPublisher(result: StepResult, subject: string): Promise<boolean> {
    const binding = this.#resultBinding;
    if (!binding || this.#bus.identity === undefined) return false;
    const publisher = busNames(this.#bus.options.prefix).resultPublisherOf(subject);
    const { tenantId, goalId } = result;
    // A step's capability never changes, so any saved version of the goal answers.
    const loaded =
      this.#recall(tenantId, goalId) ?? (await loadGoal(this.#store.tenant(tenantId), goalId));
    const reason = await resultRefusal(loaded.state, result, publisher, binding.mayServe);
    if (reason === undefined) return false;
    this.#log.warn({ goalId, attemptId: result.attemptId, publisher, reason }, "result refused");
    binding.onRefused?.(reason);
    await this.#store.audit
      .append({
        actor: publisher ? binding.spiffeIdOf(publisher) : "unknown",
        action: "result.refused",
        resource: `goal/${goalId}/step/${result.stepId}`,
        tenantId,
        details: { attemptId: result.attemptId, subject, reason },
      })
      .catch((err: unknown) => this.#log.warn({ err }, "audit append failed"));
    return true;
  }

  /** Stops the consumer (in-flight results finish or go back) and the ticker. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    this.#dispatchRetry.stop();
    const ticker = this.#ticker.stop();
    await this.#results?.stop({ graceMs: 5_000 });
    await ticker;
  }

  /** Wakes the ticker now (or as soon as the running tick ends). */
  kick(): void {
    this.#ticker.kick();
  }

  /**
   * Accepts a goal: plans it, then persists it (idempotently) with its plan,
   * records it and dispatches it. Nothing is stored for a goal that is not
   * accepted: the planner refusing it (unknown kind, invalid input) answers
   * with the planner's code, and a passing cause (the bus, the planner or the
   * registry unreachable) answers UNAVAILABLE, so the same request with the
   * same idempotency key may simply be sent again. A goal whose capabilities
   * no live agent offers right now is accepted and waits for them.
   */
  async submit(req: NewGoalRequest): Promise<Submitted> {
    // With the bus down the goal could be stored but not dispatched: refuse it
    // (UNAVAILABLE, retryable) before writing anything instead of waiting out the deadline.
    this.#bus.checkAvailable();
    const tenant = this.#store.tenant(req.tenantId);
    if (req.idempotencyKey) {
      const existing = await tenant.goals.findByIdempotencyKey(req.idempotencyKey);
      if (existing) return { loaded: await loadGoal(tenant, existing.id), created: false };
    }
    const limits = await this.#tenants.admitSubmission(req);
    const goalId = randomUUID();
    mark(goalId, "x.submitIn");
    const planning = await this.#planNew(goalId, req);
    mark(goalId, "x.planned");
    const now = this.#clock.now();
    const deadlineMs = req.deadlineMs ?? now + this.#defaultDeadlineMs;
    const init = initGoal({
      goalId,
      tenantId: req.tenantId,
      kind: req.kind,
      input: req.input,
      createdAtMs: now,
      deadlineMs,
      ...(req.parentGoalId ? { parentGoalId: req.parentGoalId } : {}),
      ...(req.parentStepId ? { parentStepId: req.parentStepId } : {}),
      ...(req.submittedBy ? { submittedBy: req.submittedBy } : {}),
      ...(req.submitterRoles?.length ? { submitterRoles: req.submitterRoles } : {}),
      ...(req.traceId && req.traceSpanId
        ? { traceparent: `00-${req.traceId}-${req.traceSpanId}-01` }
        : {}),
    });
    // A goal whose plan is known is created planned: its state after the
    // `planned` transition too, with both transitions' events and commands.
    const planned = planning.plan
      ? reduceGoal(init.state, { type: "planned", plan: planning.plan, at: now })
      : undefined;
    const next = planned?.state ?? init.state;
    const commands = [...init.commands, ...(planned?.commands ?? [])];
    const creation = await goalCreation(
      tenant,
      {
        id: goalId,
        kind: req.kind,
        input: req.input,
        priority: req.priority ?? 0,
        deadline: new Date(deadlineMs),
        ...(req.idempotencyKey ? { idempotencyKey: req.idempotencyKey } : {}),
        ...(req.labels ? { labels: req.labels } : {}),
        ...(req.strategy ? { requestedStrategy: req.strategy } : {}),
        ...(req.parentGoalId ? { parentGoalId: req.parentGoalId } : {}),
        ...(req.parentStepId ? { parentStepId: req.parentStepId } : {}),
        ...(req.traceId ? { traceId: req.traceId } : {}),
        ...(req.traceSpanId ? { traceSpanId: req.traceSpanId } : {}),
        ...(req.submittedBy ? { submittedBy: req.submittedBy } : {}),
        ...(req.submitterRoles?.length ? { submitterRoles: req.submitterRoles } : {}),
      },
      next,
      commands,
      goalSubmittedEvent({
        actor: req.actor,
        tenantId: req.tenantId,
        goalId,
        kind: req.kind,
        details: {
          ...(req.parentGoalId ? { parentGoalId: req.parentGoalId } : {}),
          idempotent: Boolean(req.idempotencyKey),
        },
      }),
      now,
      this.#due,
    );
    // One statement: the goal, its events, plan, steps, attempts and audit record,
    // or (a repeated idempotency key) nothing but the existing goal. Creations
    // waiting together share it, unless the tenant's in-flight limit needs its lock.
    const created =
      (limits?.maxConcurrentGoals ?? 0) > 0
        ? await this.#tenants.createWithin(req.tenantId, limits, async (tx) => {
            const [out] = await tx.createGoals([creation]);
            if (out instanceof Error) throw out;
            return out!;
          })
        : await this.#creations.add(creation);
    mark(goalId, "x.created");
    if (!created.created) {
      return { loaded: await loadGoal(tenant, created.goal.id), created: false };
    }
    // The row just written is the goal as stored: go on from it without loading it again.
    const after = createdGoal(created.goal, next, planning.plan);
    if (planned) {
      this.stats.transitions++;
      this.#remember(req.tenantId, after);
    }
    await this.#run(after.state, commands, after);
    mark(goalId, "x.dispatched");
    if (planned) return { loaded: after, created: true };
    return { loaded: await this.#waitForAgents(after, planning.missing!), created: true };
  }

  /**
   * Plans a goal not yet stored. Resolves with its plan, or with the
   * capabilities no live agent offers; throws the planner's refusal, or
   * UNAVAILABLE for anything passing.
   */
  async #planNew(
    goalId: string,
    req: NewGoalRequest,
  ): Promise<{ plan: Plan; missing?: never } | { plan?: never; missing: MeshError }> {
    try {
      return {
        plan: await this.#callPlanner(goalId, {
          tenantId: req.tenantId,
          kind: req.kind,
          input: req.input,
          strategy: req.strategy ?? "",
        }),
      };
    } catch (err) {
      const e = MeshError.from(err);
      if (missingCapabilitiesOf(e)) return { missing: e };
      if (rejectionCodes.has(e.code)) throw e;
      throw new MeshError(Code.Unavailable, `the goal was not accepted: ${e.message}`, {
        cause: e,
        retryable: true,
      });
    }
  }

  #callPlanner(
    goalId: string,
    goal: { tenantId: string; kind: string; input: JsonObject; strategy: string },
  ): Promise<Plan> {
    return this.#planGoal({ goalId, ...goal });
  }

  /**
   * Plans a stored goal that has no plan yet (the ticker's retry). A planner
   * refusal fails the goal; missing agents make it wait (see `agent-wait.ts`);
   * an unavailable planner leaves it PENDING for the next tick. `known` is the
   * goal as just stored, if the caller has it (saves a load). Resolves with
   * the goal as stored afterwards.
   */
  async plan(tenantId: string, goalId: string, known?: LoadedGoal): Promise<LoadedGoal> {
    const current = known ?? (await loadGoal(this.#store.tenant(tenantId), goalId));
    const { goal, state } = current;
    if (state.plan !== undefined || isTerminal(state.status)) return current;
    try {
      const plan = await this.#callPlanner(goalId, {
        tenantId,
        kind: goal.kind,
        input: goal.input as JsonObject,
        strategy: goal.requestedStrategy ?? "",
      });
      const { after } = await this.apply(
        tenantId,
        goalId,
        (_s, now) => [{ type: "planned", plan, at: now }],
        current,
      );
      return after;
    } catch (err) {
      const e = MeshError.from(err);
      if (missingCapabilitiesOf(e)) return this.#waitForAgents(current, e);
      if (!rejectionCodes.has(e.code)) {
        this.#log.warn({ goalId, code: e.codeName, err: e.message }, "planning deferred");
        return current;
      }
      return this.#planFailed(current, e);
    }
  }

  /** Fails an unplanned goal with the planner's reason. */
  async #planFailed(current: LoadedGoal, e: MeshError): Promise<LoadedGoal> {
    const { tenantId, goalId } = current.state;
    const { after } = await this.apply(
      tenantId,
      goalId,
      (_s, now) => [{ type: "planFailed", error: errorData(e), at: now }],
      current,
    );
    return after;
  }

  /**
   * No live agent offers a capability the goal needs: it waits (one
   * `waitingForAgents` event; the ticker plans it again) until its wait is
   * over, then fails with the planner's reason.
   */
  async #waitForAgents(current: LoadedGoal, e: MeshError): Promise<LoadedGoal> {
    const { state } = current;
    const now = this.#clock.now();
    const until = waitUntil(state, this.#agentWaitMs);
    if (now >= until) return this.#planFailed(current, e);
    return this.#recordWait(current, missingCapabilitiesOf(e) ?? [], until, errorData(e), now);
  }

  /** Saves one `waitingForAgents` event (none when the last event already says so). */
  async #recordWait(
    current: LoadedGoal,
    capabilities: string[],
    until: number,
    reason: ErrorData,
    now: number,
  ): Promise<LoadedGoal> {
    const { state } = current;
    const tenant = this.#store.tenant(state.tenantId);
    const [last] = await tenant.events.list(state.goalId, {
      afterSequence: state.sequence - 1,
      limit: 1,
    });
    const t = waitingTransition(
      state,
      { capabilities, until, reason, at: now },
      last && { type: last.type, capabilities: waitingCapabilities(last.data) },
    );
    if (t === undefined) return current;
    this.#log.info({ goalId: state.goalId, capabilities, until }, "goal waits for agents");
    try {
      const after = await commitTransition(
        this.#store,
        state.tenantId,
        current,
        t.state,
        t.commands,
        now,
        this.#due,
      );
      await this.#run(t.state, t.commands, current);
      return after;
    } catch (err) {
      // Another replica moved the goal on (planned or recorded the wait): it is theirs.
      if (isMeshError(err) && err.code === Code.Aborted) return current;
      throw err;
    }
  }

  /** Cancels a goal (a no-op when it already finished). */
  cancel(tenantId: string, goalId: string, reason: string): Promise<Applied> {
    return this.apply(tenantId, goalId, (_s, now) => [
      { type: "cancelRequested", reason, at: now },
    ]);
  }

  /**
   * Loads the goal (or starts from `known`, the goal as the caller just saw it
   * stored), reduces `inputs(state, now)`, saves the transition under the
   * goal's optimistic lock and runs its commands. On ABORTED (another replica
   * won) it starts over from a fresh load.
   */
  async apply(
    tenantId: string,
    goalId: string,
    inputs: (state: GoalState, now: number) => GoalInput[],
    known?: LoadedGoal,
  ): Promise<Applied> {
    const tenant = this.#store.tenant(tenantId);
    for (let attempt = 1; ; attempt++) {
      const loaded = attempt === 1 && known ? known : await loadGoal(tenant, goalId);
      const now = this.#clock.now();
      const list = inputs(loaded.state, now);
      const reliability = await this.#reliabilityFor(loaded.state, list);
      let state = loaded.state;
      const commands: GoalCommand[] = [];
      for (const input of list) {
        const t = reduceGoal(state, input, { reliability });
        state = t.state;
        commands.push(...t.commands);
      }
      if (state === loaded.state) {
        // `known` may be older than the store (another replica moved on): only a fresh load may say "nothing to do".
        if (loaded === known) continue;
        return { state, loaded, after: loaded, changed: false };
      }
      let after: LoadedGoal;
      try {
        mark(goalId, "x.commitStart");
        after = await this.#commit(tenantId, loaded, state, commands, now);
        mark(goalId, "x.committed");
      } catch (err) {
        this.#forget(tenantId, goalId);
        if (isMeshError(err) && err.code === Code.Aborted && attempt < 25) {
          await sleep(this.#clock, Math.random() * 10 * attempt);
          continue;
        }
        throw err;
      }
      this.stats.transitions++;
      this.#remember(tenantId, after);
      await this.#run(state, commands, loaded);
      mark(goalId, "x.ran");
      return { state, loaded, after, changed: true };
    }
  }

  /**
   * Saves a transition: one that plans the goal on its own
   * (`commitTransition`), any other with the transitions of other goals
   * waiting at the same moment, in one statement (group commit), each under
   * its own goal's optimistic lock.
   */
  async #commit(
    tenantId: string,
    loaded: LoadedGoal,
    state: GoalState,
    commands: GoalCommand[],
    now: number,
  ): Promise<LoadedGoal> {
    const prepared = await prepareTransition(
      this.#store,
      tenantId,
      loaded,
      state,
      commands,
      now,
      this.#due,
    );
    if (prepared === undefined) {
      return commitTransition(this.#store, tenantId, loaded, state, commands, now, this.#due);
    }
    return prepared.saved(await this.#transitions.add(prepared.update));
  }

  /** Applies one agent's result, starting from `known` or the goal as this replica last saved it. */
  async #applyResult(result: StepResult, known?: LoadedGoal): Promise<void> {
    const { tenantId, goalId } = result;
    await this.apply(
      tenantId,
      goalId,
      (_s, now) => [{ type: "result", result, at: now }],
      known ?? this.#recall(tenantId, goalId),
    );
  }

  /** The goal as this replica last saved it, if it is still remembered. */
  #recall(tenantId: string, goalId: string): LoadedGoal | undefined {
    return this.#recent.get(`${tenantId}/${goalId}`);
  }

  #remember(tenantId: string, after: LoadedGoal): void {
    const key = `${tenantId}/${after.goal.id}`;
    this.#recent.delete(key);
    if (isTerminal(after.state.status)) return;
    if (this.#recent.size >= maxRecentGoals) this.#recent.delete(this.#recent.keys().next().value!);
    this.#recent.set(key, after);
  }

  #forget(tenantId: string, goalId: string): void {
    this.#recent.delete(`${tenantId}/${goalId}`);
  }

  /** A goal the ticker found unplanned: planned now, or ended when past its deadline. */
  async #planPending(g: GoalRecord): Promise<void> {
    if (g.deadline && g.deadline.getTime() <= this.#clock.now()) {
      await this.apply(g.tenantId, g.id, (_s, now) => [{ type: "deadlinePassed", at: now }]);
    } else {
      await this.plan(g.tenantId, g.id);
    }
  }

  /** Feeds what is due for a goal, then re-checks claimed steps nothing changed. */
  async #fireDue(tenantId: string, goalId: string, claimed: string[]): Promise<void> {
    // A job no agent took by its deadline: fed as a timeout only once an agent
    // offering its capability is live again (or the wait is over), and then, if
    // the goal waited for that agent, as `untaken` (NOT_TAKEN, not charged to the
    // step's retries, up to `maxUnchargedAttempts`): an agent outage costs a step
    // none of its attempts.
    let untaken: UntakenJob[] = [];
    const first = await this.apply(tenantId, goalId, (s, now) => {
      const due = dueInputs(s, now);
      untaken = untakenJobs(s, due);
      return due.filter(
        (i) => !(i.type === "attemptTimedOut" && untaken.some((u) => u.attemptId === i.attemptId)),
      );
    });
    const { loaded } = first;
    let { state, after } = first;
    const now = this.#clock.now();
    const waiting = new Set<string>();
    if (untaken.length > 0 && !isTerminal(state.status)) {
      const away = await this.#capabilitiesAway(untaken);
      const timedOut = untaken.filter(
        (u) => !away.has(awayKey(u)) || now >= u.timeoutAtMs + this.#agentWaitMs,
      );
      // Agents back after the job waited for them: the attempt is not the step's failure.
      const waited = await this.#waitedFor(
        tenantId,
        goalId,
        state.sequence,
        timedOut.filter((u) => !away.has(awayKey(u))),
      );
      if (timedOut.length > 0) {
        ({ state, after } = await this.apply(
          tenantId,
          goalId,
          (_s, at) =>
            timedOut.map((u) => ({
              type: "attemptTimedOut",
              attemptId: u.attemptId,
              at,
              ...(waited.has(u.attemptId) ? { untaken: true } : {}),
            })),
          after,
        ));
      }
      const still = untaken.filter((u) => !timedOut.includes(u));
      for (const u of still) waiting.add(u.stepId);
      if (still.length > 0 && !isTerminal(state.status)) {
        const capabilities = [...new Set(still.map((u) => u.capability))].sort();
        after = await this.#recordWait(
          after,
          capabilities,
          Math.min(
            Math.min(...still.map((u) => u.timeoutAtMs)) + this.#agentWaitMs,
            state.deadlineMs,
          ),
          {
            code: "UNAVAILABLE",
            message: `no live agent offers ${capabilities.join(", ")}; the step waits for one`,
            retryable: true,
          },
          now,
        );
        state = after.state;
      }
    }
    if (isTerminal(state.status) || state.plan === undefined) return;
    const tenant = this.#store.tenant(tenantId);
    const recovery = recoverGoal(state);
    for (const stepId of claimed) {
      const step = state.steps[stepId];
      if (step === undefined || isStepTerminal(step.status)) continue;
      // Rewritten by the transition above: its due time is fresh.
      if (state !== loaded.state && loaded.state.steps[stepId] !== step) continue;
      if (step.spec.subGoal !== undefined && step.status === StepStatus.RUNNING) {
        if (await this.#children.recheck(state, stepId, step.childGoalId, recovery)) continue;
      } else if (step.status === StepStatus.DISPATCHED) {
        // The job may never have left (a crash after commit): publish it again
        // under the same attempt id; the bus drops it if it did.
        await this.#run(
          state,
          recovery.filter((c) => c.type === "dispatchJob" && c.job.stepId === stepId),
          undefined,
          { republish: true },
        );
      }
      // Not released when changed meanwhile: whoever changed it set the due time.
      await tenant.plans.releaseStep(
        state.plan.planId,
        stepId,
        this.#owner,
        waiting.has(stepId)
          ? new Date(now + agentRecheckMs)
          : stepDueAt(state, step, now, this.#due, false),
      );
    }
  }

  /**
   * Carries out a persisted transition's commands. Failures are logged; due
   * times recover them. `republish`: the jobs may have left before (a
   * recovery), so they are not counted against a rate limit again.
   */
  async #run(
    state: GoalState,
    commands: GoalCommand[],
    loaded: LoadedGoal | undefined,
    { republish = false } = {},
  ) {
    const failed = (c: GoalCommand) => (err: unknown) =>
      this.#log.warn({ err, goalId: state.goalId, command: c.type }, "command failed");
    // Publishes leave in order without waiting for each PubAck in turn, so a
    // transition's events and jobs share one socket write and one wait. Goal
    // events wait for none: they are best-effort on the bus (the store holds
    // them, WatchGoal reads it), one connection keeps them in order, and their
    // message ids still deduplicate a republish.
    const published: Promise<unknown>[] = [];
    const later: GoalCommand[] = [];
    const refused: { job: StepJob; reason: string }[] = [];
    /** Attempts ended at dispatch (over a quota or a rate limit), applied as results. */
    const heldBack: StepResult[] = [];
    for (const c of commands) {
      try {
        switch (c.type) {
          case "emitEvent":
            published.push(this.#bus.publishGoalEvent(c.event, noPubAck).catch(failed(c)));
            break;
          case "dispatchJob": {
            const meta = await this.#capabilityTools.get(c.job.capability);
            const decision = this.#dispatchPolicy?.authorize(c.job, state, meta);
            if (decision && !decision.allow) {
              refused.push({ job: c.job, reason: decision.reason });
              break;
            }
            const job = await this.#pinVersion(c.job, state);
            if (job === undefined) {
              refused.push({
                job: c.job,
                reason: "no agent version can satisfy its version range",
              });
              break;
            }
            const limit = meta?.rateLimit;
            // An attempt following one a rate limit held back has its turn reserved already.
            const step = state.steps[job.stepId];
            if (limit && !republish && !(step && attemptRateLimited(step, job.attempt - 1))) {
              const verdict = await this.#capabilityLimiter.admit(job, limit, state.deadlineMs);
              if (verdict.kind !== "now") {
                this.#log.debug(
                  { goalId: job.goalId, stepId: job.stepId, reason: verdict.reason },
                  "dispatch held back by a rate limit",
                );
                heldBack.push(
                  verdict.kind === "wait"
                    ? rateLimitedResult(job, verdict.notBeforeMs, verdict.reason)
                    : noTurnResult(job, verdict.reason),
                );
                break;
              }
            }
            const quota = await this.#tenants.takeStep(state.tenantId, job.capability);
            if (!quota.allow) heldBack.push(overQuotaResult(job, quota.reason));
            else
              published.push(
                this.#bus
                  // The job joins its goal's trace: the agent's handler span is its child.
                  .publishJob(job, state.traceparent ? { traceparent: state.traceparent } : {})
                  // NATS away: published again once it is back, not left to the step's timeout.
                  .catch((err: unknown) => this.#dispatchRetry.add(job, err)),
              );
            break;
          }
          case "publishCancel":
            published.push(this.#bus.publishCancel(c.signal).catch(failed(c)));
            break;
          case "scheduleTimeout":
          case "scheduleRetry":
          case "scheduleDeadline":
            this.#ticker.kickAt(c.at);
            break;
          default:
            later.push(c);
        }
      } catch (err) {
        failed(c)(err);
      }
    }
    await Promise.all(published);
    for (const { job, reason } of refused) await this.#refuseDispatch(job, reason);
    for (const result of heldBack) {
      await this.#batcher
        .add(result)
        .catch((err: unknown) =>
          this.#log.warn({ err, goalId: result.goalId }, "held-back attempt not applied"),
        );
    }
    for (const c of later) {
      try {
        if (c.type === "startChildGoal") await this.#children.start(state, c);
        else if (c.type === "cancelChildGoal") await this.#children.cancel(state, c);
        else if (c.type === "finishGoal") await this.#finished(state, loaded);
      } catch (err) {
        failed(c)(err);
      }
    }
  }

  /**
   * A job the policy refused: audited, and its attempt failed at once with
   * PERMISSION_DENIED (not retryable), as if an agent had reported it.
   */
  async #refuseDispatch(job: StepJob, reason: string): Promise<void> {
    this.#log.warn(
      { goalId: job.goalId, stepId: job.stepId, capability: job.capability, reason },
      "policy denied a dispatch",
    );
    await this.#store.audit
      .append(this.#dispatchPolicy!.denialEvent(job, reason))
      .catch((err: unknown) => this.#log.warn({ err }, "could not audit a dispatch denial"));
    await this.#batcher
      .add(deniedResult(job, reason))
      .catch((err: unknown) =>
        this.#log.warn(
          { err, goalId: job.goalId },
          "denied dispatch not applied; the step times out",
        ),
      );
  }

  async #finished(state: GoalState, loaded: LoadedGoal | undefined): Promise<void> {
    const outcome = goalOutcome(state, decisionContext(state.tenantId, state.kind, state.input));
    if (outcome) {
      // Not awaited: with NATS away it waits for the connection (a goal can finish
      // then, by cancel or deadline) without holding up the ticker or the caller.
      void this.#bus
        .publishOutcome(outcome, { waitForConnectionMs: outcomePublishWaitMs })
        .catch((err: unknown) =>
          this.#log.warn({ err, goalId: state.goalId }, "outcome not published"),
        );
    }
    this.#log.info(
      { goalId: state.goalId, status: GoalStatus[state.status], kind: state.kind },
      "goal finished",
    );
    // One replica commits the final transition, so each goal is counted once.
    this.#sli?.finished({
      tenantId: state.tenantId,
      kind: state.kind,
      status: goalEnds[state.status] ?? "failed",
      seconds: ((state.finishedAtMs ?? this.#clock.now()) - state.createdAtMs) / 1000,
      traceId: loaded?.goal.traceId ?? undefined,
    });
    if (state.parentGoalId && loaded) {
      await this.#children.notifyParent({ ...loaded, state });
    }
  }

  /**
   * Of `jobs` (untaken, their capability live again), those the goal recorded
   * waiting for (a `waitingForAgents` event naming the capability since the
   * job was dispatched), by attempt id. Among the goal's recent events only:
   * the wait is recorded at most an agent-recheck interval before this.
   */
  async #waitedFor(
    tenantId: string,
    goalId: string,
    sequence: number,
    jobs: UntakenJob[],
  ): Promise<Set<string>> {
    const out = new Set<string>();
    if (jobs.length === 0) return out;
    const events = await this.#store
      .tenant(tenantId)
      .events.list(goalId, { afterSequence: Math.max(0, sequence - recentEventsScanned) })
      .catch((err: unknown) => {
        this.#log.warn({ err, goalId }, "could not read the goal's waits; untaken jobs time out");
        return [];
      });
    for (const u of jobs) {
      const waited = events.some(
        (e) =>
          e.type === "waitingForAgents" &&
          e.createdAt.getTime() >= u.dispatchedAtMs &&
          waitingCapabilities(e.data).includes(u.capability),
      );
      if (waited) out.add(u.attemptId);
    }
    return out;
  }

  /** Whether the job's attempt, as stored, still waits for its job (not cancelled, ended or superseded). */
  async #attemptDispatched(job: StepJob): Promise<boolean> {
    const { state } = await loadGoal(this.#store.tenant(job.tenantId), job.goalId);
    if (isTerminal(state.status)) return false;
    const step = state.steps[job.stepId];
    return (
      step?.attempts.some((a) => a.attemptId === job.attemptId && a.status === "dispatched") ??
      false
    );
  }

  /**
   * The job of a step with a version range, pinned to one agent version inside it
   * (`version-routing.ts`); the job itself otherwise. Undefined when no version can
   * satisfy the range. Pinned again on every publish: a recovered job whose first
   * publish landed keeps that one (the bus drops the repeat by its attempt id).
   */
  async #pinVersion(job: StepJob, state: GoalState): Promise<StepJob | undefined> {
    const range = state.steps[job.stepId]?.spec.versionRange;
    if (!range) return job;
    const version = await this.#versions.pin(job.capability, range);
    if (version === undefined) return undefined;
    const pinned = clone(StepJobSchema, job);
    pinned.agentVersion = version;
    return pinned;
  }

  /**
   * Of `jobs`, the keys (`awayKey`) of those no live agent can take: none offers the
   * capability, or none inside the step's version range (the registry unreachable: none).
   */
  async #capabilitiesAway(
    jobs: readonly { capability: string; versionRange?: string | undefined }[],
  ): Promise<Set<string>> {
    const away = new Set<string>();
    const keys = new Map(jobs.map((j) => [awayKey(j), j]));
    await Promise.all(
      [...keys].map(async ([key, { capability, versionRange }]) => {
        if (versionRange) {
          if ((await this.#versions.available(capability, versionRange)) === false) away.add(key);
          return;
        }
        try {
          const res = await this.#clients.registry.findAgents(
            { capability, limit: 1 },
            { timeoutMs: 2_000 },
          );
          if (res.agents.length === 0) away.add(key);
        } catch {
          // Nothing known: the attempt times out as it would have.
        }
      }),
    );
    return away;
  }

  /** Reliability scores for arbitrated steps a result may decide, from the registry. */
  async #reliabilityFor(
    state: GoalState,
    inputs: GoalInput[],
  ): Promise<(agentId: string, capability: string) => number> {
    const agents = new Set<string>();
    for (const input of inputs) {
      if (input.type !== "result") continue;
      const step = state.steps[input.result.stepId];
      if (step === undefined || step.spec.replicas < 2) continue;
      if (input.result.agentId) agents.add(input.result.agentId);
      for (const a of step.attempts) if (a.agentId) agents.add(a.agentId);
    }
    const scores = new Map<string, Record<string, number>>();
    await Promise.all(
      [...agents].map(async (agentId) => {
        try {
          const res = await this.#clients.registry.getAgent({ agentId }, { timeoutMs: 2_000 });
          scores.set(agentId, res.agent?.reliability ?? {});
        } catch {
          // Unknown or unreachable: the neutral default below.
        }
      }),
    );
    return (agentId, capability) => scores.get(agentId)?.[capability] ?? 0.5;
  }
}

/** Inputs due at `now`: retries, attempt timeouts and the deadline. */
function dueInputs(state: GoalState, now: number): GoalInput[] {
  const out: GoalInput[] = [];
  if (isTerminal(state.status)) return out;
  if (now >= state.deadlineMs) return [{ type: "deadlinePassed", at: now }];
  for (const id of state.stepOrder) {
    const step = state.steps[id]!;
    if (step.status === StepStatus.RETRY_WAIT && (step.retryAtMs ?? 0) <= now) {
      out.push({ type: "retryDue", stepId: id, attempt: step.attempt + 1, at: now });
    }
    if (step.status === StepStatus.DISPATCHED || step.status === StepStatus.RUNNING) {
      for (const a of step.attempts) {
        if (a.attempt !== step.attempt) continue;
        if ((a.status === "dispatched" || a.status === "running") && a.timeoutAtMs <= now) {
          out.push({ type: "attemptTimedOut", attemptId: a.attemptId, at: now });
        }
      }
    }
  }
  return out;
}

/** A due attempt timeout of a job no agent started. */
interface UntakenJob {
  attemptId: string;
  stepId: string;
  capability: string;
  /** The step's version range, when it has one. */
  versionRange?: string | undefined;
  dispatchedAtMs: number;
  timeoutAtMs: number;
}

/** What "no agent can take it" is decided for: a capability, with the step's range if any. */
function awayKey(job: { capability: string; versionRange?: string | undefined }): string {
  return job.versionRange ? `${job.capability} ${job.versionRange}` : job.capability;
}

/** The attempt timeouts among `due` whose job no agent started (a sub-goal step has no job). */
function untakenJobs(state: GoalState, due: GoalInput[]): UntakenJob[] {
  const out: UntakenJob[] = [];
  for (const input of due) {
    if (input.type !== "attemptTimedOut") continue;
    for (const step of Object.values(state.steps)) {
      const a = step.attempts.find((x) => x.attemptId === input.attemptId);
      if (a?.status === "dispatched" && step.spec.capability !== "") {
        out.push({
          attemptId: a.attemptId,
          stepId: step.spec.stepId,
          capability: step.spec.capability,
          versionRange: step.spec.versionRange,
          dispatchedAtMs: a.dispatchedAtMs,
          timeoutAtMs: a.timeoutAtMs,
        });
      }
    }
  }
  return out;
}

function jsonDetails(details: Record<string, unknown>): JsonObject {
  return JSON.parse(JSON.stringify(details)) as JsonObject;
}

/** A planner refusal as the goal's error. */
function errorData(e: MeshError): ErrorData {
  return {
    code: e.codeName,
    message: e.message,
    retryable: false,
    ...(Object.keys(e.details).length > 0 ? { details: jsonDetails(e.details) } : {}),
  };
}

/** The capabilities of a stored `waitingForAgents` event (empty for any other). */
function waitingCapabilities(data: JsonValue): string[] {
  const value = (data as { waitingForAgents?: { capabilities?: unknown } } | null)?.waitingForAgents
    ?.capabilities;
  return Array.isArray(value) ? value.filter((c): c is string => typeof c === "string") : [];
}
