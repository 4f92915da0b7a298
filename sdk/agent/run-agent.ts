/**
 * Runs an agent: keeps its card registered (`lease-keeper.ts`), consumes its
 * capabilities' jobs from the bus with a concurrency limit, validates each input
 * against the skill's schema, runs the handler with an AbortSignal (attempt
 * deadline, goal deadline, cancellation, shutdown), reports STARTED then
 * SUCCEEDED / FAILED / CANCELLED on the results subject, and drains on SIGTERM.
 *
 * The handler contract (`sdk/README.md`, ADR-010), so no job is lost, none runs
 * after its attempt was given up and none loops forever:
 * - a job starts only before its attempt's and its goal's deadline, and only on
 *   its first delivery or after a clean hand-back; a redelivery after its agent
 *   was lost (crash, kill, OOM, stall) is refused as `AGENT_LOST` (`attempt-fence.ts`);
 * - the handler is aborted at the earliest of the step timeout and those deadlines
 *   → FAILED `DEADLINE_EXCEEDED` (retryable: the executor decides);
 * - every error is reported at once with its code and retryability, and the job
 *   acked: the executor's retry policy makes the next attempt (ADR-004);
 * - a result too large for the bus → FAILED `RESOURCE_EXHAUSTED` (not retryable);
 * - on stop, a job still running after the grace period is handed back cleanly
 *   and another agent runs it at once.
 * While a handler runs the SDK tells the bus it is alive (`working()`), so the
 * ack wait only needs to outlast that heartbeat, whatever the step's timeout.
 * The result is written before the job is acked, and results are deduplicated
 * by attempt id and status, so a crash in between cannot report twice.
 *
 * @example
 * const running = await runAgent(textAgent); // certificate, NATS and registry from AGENTMESH_* / NATS_URL
 * await running.stopped; // until SIGTERM, or running.stop()
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, timestampMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Registry } from "prom-client";
import {
  type StepJob,
  type StepResult,
  StepResultSchema,
  StepResultStatus,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import type { AgentCard } from "../../gen/agentmesh/v1/registry_pb.js";
import { admitJob } from "../../lib/bus/attempt-fence.js";
import type { Delivery, JobBus, Subscription, Unsubscribe } from "../../lib/bus/job-bus.js";
import { defaultBackoff } from "../../lib/bus/job-bus.js";
import { settings } from "../../lib/config/settings.js";
import { Code, isMeshError } from "../../lib/errors/mesh-error.js";
import { createLogger, type Logger } from "../../lib/log/logger.js";
import { isVersion } from "../../lib/plan/version-range.js";
import { signCard } from "../../lib/signing/card-signature.js";
import { traceIdOf } from "../../lib/telemetry/exemplar-histogram.js";
import { meshMetrics } from "../../lib/telemetry/metrics.js";
import { type JobOutcome, jobSli } from "../../lib/telemetry/slis.js";
import { type FailureInfo, failureOf } from "./agent-error.js";
import { type AgentConnectionOptions, connectAgent } from "./connect-agent.js";
import {
  type AgentDefinition,
  agentCard,
  type SkillContext,
  type SkillDefinition,
} from "./define-agent.js";
import { handlerSpanOn, inHandlerSpan, markHandlerFailed } from "./handler-span.js";
import { keepLease } from "./lease-keeper.js";
import type { AgentStatus } from "./lease-lifecycle.js";
import { type ConformanceOutcome, noopRegistryLink, type RegistryLink } from "./registry-link.js";
import { compileSchema, type Validator } from "./schema.js";

export interface RunAgentOptions {
  /**
   * Where jobs come from and results go. Default: connected from `connection`
   * (certificate, NATS and registry from the `AGENTMESH_*` variables and
   * `NATS_URL`), closed again when the agent stops.
   */
  bus?: JobBus;
  /**
   * Registry to register with. Default: with `bus` given, a no-op link (standalone
   * run); without, the registry at `AGENTMESH_REGISTRY_ADDR` over mutual TLS.
   */
  registry?: RegistryLink;
  /** How to connect when no `bus` is given (identity, certificate folder, addresses). */
  connection?: AgentConnectionOptions;
  /** Identifies this process to the registry. Default `<host>-<pid>-<random>`. */
  instanceId?: string;
  /** Jobs run at once per skill unless the skill sets `maxConcurrency`. Default 8. */
  concurrency?: number;
  /** Messages pulled ahead per skill. Default: the skill's concurrency. */
  prefetch?: number;
  /** Time limit of a job that carries none. Default 5 min. */
  defaultTimeoutMs?: number;
  /** On stop, how long running jobs may finish before they are handed back. Default 10 s. */
  drainGraceMs?: number;
  /** Stop (drain) on SIGTERM and SIGINT. Default true. */
  handleSignals?: boolean;
  /** Publish STARTED results. Default true. */
  reportStarted?: boolean;
  /**
   * Report STARTED only for jobs still running after this long. The final result
   * carries `started_at` too, so for a quick job a separate STARTED says nothing
   * new and costs a third of the bus traffic. Default 100 ms; 0 reports every start.
   */
  startedReportDelayMs?: number;
  /**
   * Signs the card at start with this Ed25519 key (PEM) as `signer` (ADR-015), instead
   * of a signature shipped in the definition. Default: the definition's signature, if any.
   */
  signingKey?: { signer: string; privateKeyPem: string };
  /**
   * Consume this version's own job queue (steps with a version range, ADR-015). Default:
   * yes, except on a mutual-TLS NATS (a bus with an `identity`), whose permission file must
   * list the version first (`agentmesh nats config --agent-version`); there
   * `AGENTMESH_AGENT_VERSION_QUEUE=true` turns it on.
   */
  versionQueue?: boolean;
  /** Lease length to ask the registry for. Default: the registry's (15 s). */
  leaseTtlMs?: number;
  /** Called when the agent's status changes (registered, lease lost, draining...). */
  onStatus?: (status: AgentStatus) => void;
  /** Logger; default one named `agent-<name>`. */
  log?: Logger;
  /**
   * Where the job metrics go (queue wait, run time and jobs settled by capability,
   * `lib/telemetry/slis.ts`); default the process registry that `agentmesh agent` serves on `/metrics`.
   */
  metrics?: Registry;
}

export interface RunningAgent {
  /** Id the registry assigned (or a local one without a registry). */
  readonly agentId: string;
  readonly card: AgentCard;
  /** Registration and readiness now, e.g. for the process's `/readyz`. */
  status(): AgentStatus;
  /** Live and holding its registry lease (`status().ready`). */
  readonly ready: boolean;
  /** Jobs running now. */
  readonly inFlight: number;
  /** Drains: stops pulling, lets running jobs finish within the grace period, hands back the rest, deregisters. */
  stop(reason?: string): Promise<void>;
  /** Resolves when the agent has stopped. */
  readonly stopped: Promise<void>;
}

interface Running {
  job: StepJob;
  /** Stops the handler's wait and aborts its signal; the first reason wins. */
  abort(reason: AbortReason): void;
  delivery: Delivery<StepJob>;
  /** When the bus last heard that this job is alive. */
  lastWorking: number;
}

type AbortReason = "timeout" | "cancelled" | "shutdown";

/** How long a cancelled goal is remembered, to refuse its jobs picked up later. */
const cancelMemoryMs = 10 * 60_000;

export async function runAgent(
  agent: AgentDefinition,
  options: RunAgentOptions = {},
): Promise<RunningAgent> {
  if (options.bus) return runOnBus(agent, { ...options, bus: options.bus });
  const link = await connectAgent(agent.name, {
    ...(options.log ? { log: options.log } : {}),
    ...options.connection,
  });
  let running: RunningAgent;
  try {
    running = await runOnBus(agent, {
      ...options,
      bus: link.bus,
      registry: options.registry ?? link.registry,
    });
  } catch (err) {
    await link.close();
    throw err;
  }
  // The connection is the agent's own: it closes once the agent has drained.
  const stopped = running.stopped.finally(() => link.close());
  return {
    get agentId() {
      return running.agentId;
    },
    card: running.card,
    status: () => running.status(),
    get ready() {
      return running.ready;
    },
    get inFlight() {
      return running.inFlight;
    },
    async stop(reason) {
      await running.stop(reason);
      await stopped;
    },
    stopped,
  };
}

async function runOnBus(
  agent: AgentDefinition,
  options: RunAgentOptions & { bus: JobBus },
): Promise<RunningAgent> {
  const { bus } = options;
  const log = options.log ?? createLogger({ name: `agent-${agent.name}` });
  const registry = options.registry ?? noopRegistryLink();
  const card = options.signingKey
    ? signCard(agentCard(agent), options.signingKey)
    : agentCard(agent);
  const instanceId =
    options.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  const concurrency = Math.max(1, options.concurrency ?? 8);
  const defaultTimeoutMs = options.defaultTimeoutMs ?? 300_000;
  const graceMs = options.drainGraceMs ?? 10_000;
  const reportStarted = options.reportStarted ?? true;
  const startedDelayMs = Math.max(0, options.startedReportDelayMs ?? 100);
  const sli = jobSli(options.metrics ?? meshMetrics().registry);

  // Compile every schema before anything connects: a bad schema fails start-up.
  const skills = Object.entries(agent.skills).map(([capability, skill]) => ({
    capability,
    skill,
    validateInput: compileSchema(skill.inputSchema, `${capability} input schema`),
    validateOutput: compileSchema(skill.outputSchema, `${capability} output schema`),
  }));

  const subscriptions: Subscription[] = [];
  const inFlight = () => subscriptions.reduce((n, s) => n + s.inFlight, 0);
  // Registered (retrying while the registry is unreachable) before any job is taken.
  const lease = keepLease({
    registry,
    card,
    instanceId,
    inFlight,
    log,
    ...(options.leaseTtlMs ? { leaseTtlMs: options.leaseTtlMs } : {}),
    ...(options.onStatus ? { onStatus: options.onStatus } : {}),
  });
  await lease.registered;
  const running = new Map<string, Running>();
  const cancelledGoals = new Map<string, number>();
  const cancel: Unsubscribe = bus.subscribeCancel((signal) => {
    // Only a whole-goal cancel refuses the goal's later jobs. A step-level signal
    // (an attempt timed out, a replicated step already decided) stops the attempts
    // running now; the step's next attempt must still run.
    if (!signal.stepId) {
      cancelledGoals.set(signal.goalId, Date.now() + cancelMemoryMs);
      if (cancelledGoals.size > 10_000) cancelledGoals.delete(cancelledGoals.keys().next().value!);
    }
    for (const r of running.values()) {
      if (r.job.goalId !== signal.goalId) continue;
      if (signal.stepId && r.job.stepId !== signal.stepId) continue;
      r.abort("cancelled");
    }
  });

  const isCancelled = (goalId: string) => {
    const until = cancelledGoals.get(goalId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    cancelledGoals.delete(goalId);
    return false;
  };

  const baseResult = (job: StepJob, startedAt: number) => ({
    attemptId: job.attemptId,
    goalId: job.goalId,
    tenantId: job.tenantId,
    stepId: job.stepId,
    attempt: job.attempt,
    replica: job.replica,
    agentId: lease.agentId,
    startedAt: timestampFromMs(startedAt),
  });

  // A result finished while NATS reconnects waits for it rather than rerunning the job,
  // but not so long that the job's ack wait runs out meanwhile.
  const publishWaitMs = bus.options.ackWaitMs / 2;
  const finish = async (
    delivery: Delivery<StepJob>,
    result: StepResult,
    settle: "ack" | "term" = "ack",
  ): Promise<void> => {
    result.finishedAt = timestampFromMs(Date.now());
    if (result.status === StepResultStatus.FAILED) markHandlerFailed(result.error?.message ?? "");
    try {
      await bus.publishResult(result, { waitForConnectionMs: publishWaitMs });
    } catch (err) {
      if (isMeshError(err) && err.code === Code.ResourceExhausted && !err.retryable) {
        // Too big for the bus: it would be refused on every try, so the attempt fails.
        log.warn({ attemptId: result.attemptId, ...err.details }, "result too large for the bus");
        const f = failure(
          "RESOURCE_EXHAUSTED",
          `the step's result is too large: ${err.message}`,
          err.details,
        );
        return finish(delivery, failed(delivery.data, Date.now(), f), settle);
      }
      if (settle === "term") {
        // A refused job must never run: the executor times its attempt out instead.
        log.error({ err, attemptId: result.attemptId }, "could not report a refused job");
        delivery.term();
        return;
      }
      // No result, no ack: handed back, the job runs again (within its attempt's deadline).
      log.error(
        { err, attemptId: result.attemptId },
        "could not publish the result; job handed back",
      );
      delivery.nak(defaultBackoff(delivery.deliveryCount));
      return;
    }
    if (settle === "ack") delivery.ack();
    else delivery.term();
    const job = delivery.data;
    sli.settled({
      tenantId: job.tenantId,
      capability: job.capability,
      outcome: settle === "term" ? "refused" : (outcomes[result.status] ?? "failed"),
      seconds: (Date.now() - timestampMs(result.startedAt!)) / 1000,
      traceId: traceIdOf(delivery.traceparent),
    });
  };

  const failed = (job: StepJob, startedAt: number, f: FailureInfo) =>
    create(StepResultSchema, {
      ...baseResult(job, startedAt),
      status: StepResultStatus.FAILED,
      error: {
        code: f.code,
        message: f.message,
        retryable: f.retryable,
        details: toJsonObject(f.details),
      },
    });

  async function handle(
    capability: string,
    skill: SkillDefinition<never, unknown>,
    validateInput: Validator,
    validateOutput: Validator,
    delivery: Delivery<StepJob>,
  ): Promise<void> {
    const job = delivery.data;
    const startedAt = Date.now();
    const traceId = traceIdOf(delivery.traceparent);
    // Queue wait: from dispatch to the first taker (a redelivery's wait includes a run).
    if (delivery.deliveryCount === 1 && job.dispatchedAt) {
      sli.taken({
        tenantId: job.tenantId,
        capability,
        waitSeconds: (startedAt - timestampMs(job.dispatchedAt)) / 1000,
        traceId,
      });
    }
    // A child logger costs more than the rest of a no-op job: build it only when used.
    let childLog: Logger | undefined;
    const jobLog = () =>
      (childLog ??= log.child({
        attemptId: job.attemptId,
        goalId: job.goalId,
        stepId: job.stepId,
        capability,
        delivery: delivery.deliveryCount,
      }));

    if (isCancelled(job.goalId)) {
      const r = create(StepResultSchema, {
        ...baseResult(job, startedAt),
        status: StepResultStatus.CANCELLED,
      });
      return finish(delivery, r);
    }
    // Fencing: never past the attempt's or the goal's deadline, never after a lost delivery.
    const admission = admitJob({
      nowMs: startedAt,
      attemptDeadlineMs: job.attemptDeadline ? timestampMs(job.attemptDeadline) : undefined,
      goalDeadlineMs: job.deadline ? timestampMs(job.deadline) : undefined,
      timeoutMs: (job.timeout ? durationMs(job.timeout) : 0) || defaultTimeoutMs,
      previous: delivery.deliveryCount > 1 ? await delivery.previousDelivery() : "none",
    });
    if (!admission.run) {
      jobLog().warn({ code: admission.failure.code }, admission.failure.message);
      return finish(
        delivery,
        failed(job, startedAt, { ...admission.failure, details: {} }),
        "term",
      );
    }
    const limitMs = admission.limitMs;
    const input: JsonObject = job.input ?? {};
    const violations = validateInput(input);
    if (violations.length > 0) {
      jobLog().info({ violations }, "input rejected by the skill's schema");
      const f = failure("INVALID_ARGUMENT", `input does not match the schema of ${capability}`, {
        violations,
      });
      return finish(delivery, failed(job, startedAt, f));
    }

    // The AbortController (and its signal) is made only if the handler reads ctx.signal:
    // most handlers never do, and it is a good part of a short job's cost.
    let controller: AbortController | undefined;
    let reason: AbortReason | undefined;
    // What a handler's promise races against; made only for a handler that returns one.
    let stopWaiting: ((err: Error) => void) | undefined;
    const abort = (why: AbortReason) => {
      if (reason !== undefined) return;
      reason = why;
      controller?.abort(why);
      stopWaiting?.(new AbortedError());
    };
    const reportStart = () => {
      const started = create(StepResultSchema, {
        ...baseResult(job, startedAt),
        status: StepResultStatus.STARTED,
      });
      // No PubAck wait: one connection keeps it ahead of the final result anyway.
      bus
        .publishResult(started, { awaitAck: false })
        .catch((err) => jobLog().warn({ err }, "STARTED not published"));
    };
    // One timer per job: the STARTED report when it is due before the limit, then the limit.
    const timeout = () => abort("timeout");
    let timer: NodeJS.Timeout;
    if (reportStarted && startedDelayMs === 0) reportStart();
    if (reportStarted && startedDelayMs > 0 && startedDelayMs < limitMs) {
      timer = setTimeout(() => {
        reportStart();
        timer = setTimeout(timeout, Math.max(0, startedAt + limitMs - Date.now()));
      }, startedDelayMs);
    } else timer = setTimeout(timeout, limitMs);
    running.set(job.attemptId, { job, abort, delivery, lastWorking: startedAt });
    const ctx: SkillContext = {
      attemptId: job.attemptId,
      idempotencyKey: `${job.goalId}/${job.stepId}/${job.replica}`,
      goalId: job.goalId,
      tenantId: job.tenantId,
      stepId: job.stepId,
      capability,
      attempt: job.attempt,
      deadline: new Date(startedAt + limitMs),
      // Parsed from the message's reply subject: only when read.
      get delivery() {
        return delivery.deliveryCount;
      },
      get signal() {
        if (controller === undefined) {
          controller = new AbortController();
          if (reason !== undefined) controller.abort(reason);
        }
        return controller.signal;
      },
      get log() {
        return jobLog();
      },
      traceId,
      working: () => delivery.working(),
    };

    let output: unknown;
    let error: unknown;
    let ok = false;
    try {
      const returned = skill.handler(input as never, ctx);
      if (isPromiseLike(returned)) {
        const aborted = new Promise<never>((_, reject) => {
          stopWaiting = reject;
        });
        aborted.catch(() => undefined); // a job that finished first leaves it unobserved
        output = await Promise.race([returned, aborted]);
      } else output = returned;
      ok = true;
    } catch (err) {
      error = err;
    } finally {
      clearTimeout(timer);
      running.delete(job.attemptId);
    }

    if (delivery.settled) return; // handed back by the drain already
    if (reason === "shutdown") {
      delivery.nak(0); // a clean hand-back: another agent runs it now
      sli.settled({
        tenantId: job.tenantId,
        capability,
        outcome: "handed_back",
        seconds: 0,
      });
      return;
    }
    if (reason === "cancelled") {
      const r = create(StepResultSchema, {
        ...baseResult(job, startedAt),
        status: StepResultStatus.CANCELLED,
      });
      return finish(delivery, r);
    }
    if (reason === "timeout") {
      const f = failure("DEADLINE_EXCEEDED", `step timed out after ${limitMs} ms`, {}, true);
      return finish(delivery, failed(job, startedAt, f));
    }
    if (ok) {
      const value = toJsonValue(output);
      const outViolations = validateOutput(value);
      if (outViolations.length > 0) {
        jobLog().error({ violations: outViolations }, "handler output does not match its schema");
        const f = failure("INTERNAL", `output of ${capability} does not match its schema`, {
          violations: outViolations,
        });
        return finish(delivery, failed(job, startedAt, f));
      }
      const r = create(StepResultSchema, {
        ...baseResult(job, startedAt),
        status: StepResultStatus.SUCCEEDED,
        output: fromJson(ValueSchema, value),
      });
      return finish(delivery, r);
    }
    // Reported at once, retryable or not: the executor's retry policy decides (ADR-004).
    const f = failureOf(error);
    jobLog().info({ code: f.code, message: f.message, retryable: f.retryable }, "step failed");
    return finish(delivery, failed(job, startedAt, f));
  }

  /**
   * Runs the card's conformance examples through the handlers (input checked as a
   * job's is) and reports the outputs; the registry judges them (ADR-015).
   */
  const proveConformance = async (): Promise<string[]> => {
    const outcomes: ConformanceOutcome[] = [];
    for (const [index, example] of card.conformance.entries()) {
      const entry = skills.find((s) => s.capability === example.capability);
      try {
        if (entry === undefined) throw new Error(`no skill ${example.capability}`);
        const input = (example.input ?? {}) as JsonValue;
        const violations = entry.validateInput(input);
        if (violations.length > 0) throw new Error(`input: ${JSON.stringify(violations)}`);
        const signal = AbortSignal.timeout(defaultTimeoutMs);
        const output = await entry.skill.handler(input as never, {
          attemptId: `conformance:${lease.agentId}:${index}`,
          idempotencyKey: `conformance/${card.name}/${card.version}/${index}`,
          goalId: "conformance",
          tenantId: "",
          stepId: `conformance-${index}`,
          capability: example.capability,
          attempt: 1,
          delivery: 1,
          deadline: new Date(Date.now() + defaultTimeoutMs),
          signal,
          log: log.child({ conformance: index }),
          working: () => undefined,
        });
        outcomes.push({ index, output: toJsonValue(output) });
      } catch (err) {
        outcomes.push({ index, error: err instanceof Error ? err.message : String(err) });
      }
    }
    if (registry.reportConformance === undefined) return [];
    return registry.reportConformance(lease.agentId, outcomes);
  };

  const versionQueue =
    options.versionQueue ?? (bus.identity === undefined || settings.agentVersionQueue.read());

  // A new version with conformance examples takes no job until it passed them.
  const failures = lease.probation ? await proveConformance() : [];
  if (failures.length > 0) {
    log.error(
      { agentId: lease.agentId, failures },
      "conformance examples failed: the registry keeps this agent in probation and it takes no jobs",
    );
  }

  try {
    for (const { capability, skill, validateInput, validateOutput } of failures.length > 0
      ? []
      : skills) {
      const limit = Math.max(1, skill.maxConcurrency ?? concurrency);
      // A version that is not semver is inside no range: no step is ever pinned to it.
      const ownQueue = versionQueue && isVersion(card.version);
      // The shared queue and this version's own queue (steps pinned to it, ADR-015)
      // share the skill's concurrency; one queue alone is held to it by its consumer.
      const gate = ownQueue ? concurrencyGate(limit) : ungated;
      const run = (d: Delivery<StepJob>) =>
        handlerSpanOn()
          ? inHandlerSpan(
              capability,
              d.traceparent,
              {
                "agentmesh.goal_id": d.data.goalId,
                "agentmesh.step_id": d.data.stepId,
                "agentmesh.attempt": d.data.attempt,
              },
              () => handle(capability, skill, validateInput, validateOutput, d),
            )
          : handle(capability, skill, validateInput, validateOutput, d);
      const consume = (agentVersion?: string) =>
        bus.consumeJobs(capability, {
          concurrency: limit,
          ...(options.prefetch ? { prefetch: options.prefetch } : {}),
          ...(agentVersion ? { agentVersion } : {}),
          handler: (d) => gate(() => run(d)),
        });
      subscriptions.push(await consume());
      if (ownQueue) {
        try {
          subscriptions.push(await consume(card.version));
        } catch (err) {
          // A mutual-TLS NATS whose permission file predates this version (ADR-015):
          // the agent still serves unconstrained steps; ranged ones wait for another.
          if (!isMeshError(err) || err.code !== Code.PermissionDenied) throw err;
          log.warn(
            { err, capability, version: card.version },
            "the bus refused this version's job queue; steps with a version range will not reach this agent",
          );
        }
      }
    }
  } catch (err) {
    await Promise.all(subscriptions.map((s) => s.stop({ graceMs: 0 })));
    cancel.unsubscribe();
    lease.stop();
    await registry.deregister(lease.agentId, "start-up failed").catch(() => undefined);
    throw err;
  }

  // One sweep keeps every long job alive, so the bus redelivers only when this process is gone.
  const ackWaitMs = bus.options.ackWaitMs;
  // Each job by its consumer's own ack wait, which another process may have set shorter:
  // a running job must never look lost.
  const keepAlive = setInterval(
    () => {
      const now = Date.now();
      for (const r of running.values()) {
        if (r.lastWorking > now - r.delivery.ackWaitMs / 3) continue;
        r.lastWorking = now;
        r.delivery.working();
      }
    },
    Math.max(50, Math.min(1_000, ackWaitMs / 6)),
  );
  keepAlive.unref();

  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => {
    resolveStopped = r;
  });
  let stopping: Promise<void> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, "signal received; draining");
    void stop(`signal ${sig}`);
  };
  const stop = (why = "stopped") => {
    stopping ??= (async () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      await lease.drain();
      // At the end of the grace period, abort what still runs; the bus hands it back.
      const shutdown = setTimeout(() => {
        for (const r of running.values()) r.abort("shutdown");
      }, graceMs);
      const results = await Promise.all(subscriptions.map((s) => s.stop({ graceMs })));
      clearTimeout(shutdown);
      clearInterval(keepAlive);
      cancel.unsubscribe();
      lease.stop();
      const handedBack = results.reduce((n, r) => n + r.handedBack, 0);
      const agentId = lease.agentId;
      await registry
        .deregister(agentId, why)
        .catch((err) => log.warn({ err }, "deregistration failed"));
      log.info({ agentId, reason: why, handedBack }, "agent stopped");
      resolveStopped();
    })();
    return stopping;
  };
  if (options.handleSignals ?? true) {
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
  }
  log.info(
    { agentId: lease.agentId, capabilities: skills.map((s) => s.capability), bus: bus.kind },
    "agent running",
  );

  return {
    get agentId() {
      return lease.agentId;
    },
    card,
    status: () => lease.status(),
    get ready() {
      return lease.status().ready;
    },
    get inFlight() {
      return inFlight();
    },
    stop,
    stopped,
  };
}

/** The job outcome each reported status counts as. */
const outcomes: Partial<Record<StepResultStatus, JobOutcome>> = {
  [StepResultStatus.SUCCEEDED]: "succeeded",
  [StepResultStatus.FAILED]: "failed",
  [StepResultStatus.CANCELLED]: "cancelled",
};

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === "object" || typeof value === "function") &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}

class AbortedError extends Error {
  override readonly name = "AbortError";
}

function failure(
  code: string,
  message: string,
  details: Record<string, unknown> = {},
  retryable = false,
): FailureInfo {
  return { code, message, retryable, details };
}

/** A handler's return value as JSON (`undefined` becomes null; non-JSON values are dropped). */
function toJsonValue(value: unknown): JsonValue {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value)) as JsonValue;
}

function toJsonObject(value: Record<string, unknown>): JsonObject {
  try {
    return JSON.parse(JSON.stringify(value)) as JsonObject;
  } catch {
    return {};
  }
}

/** The gate of a skill that consumes one queue only. */
function ungated<T>(task: () => Promise<T>): Promise<T> {
  return task();
}

/**
 * Runs at most `limit` tasks at once, the rest in arrival order: one skill's
 * jobs from its two queues (shared and version) stay within its concurrency.
 */
function concurrencyGate(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running >= limit) await new Promise<void>((r) => waiting.push(r));
    else running++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
