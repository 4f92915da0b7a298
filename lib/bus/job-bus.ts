/**
 * The job bus: how step jobs reach agents and how results, goal events and
 * learning jobs flow back. Two implementations keep one delivery contract —
 * NATS JetStream (`createJetStreamBus`) for production and CI, and an
 * in-process bus (`createInProcessBus`) for the embedded mode without NATS —
 * and both pass the same contract suite (`job-bus.contract.ts`).
 *
 * Delivery is at-least-once: a consumer settles each delivery explicitly with
 * `ack()`, `nak(delayMs)` or `term()`; a delivery not settled within the ack
 * wait is delivered again; after `maxDeliver` deliveries it moves to the
 * dead-letter subject `<prefix>.dlq.<capability>` and leaves the queue.
 *
 * @example
 * const bus = await connectBus({ natsUrl: "nats://127.0.0.1:4222" });
 * const sub = await bus.consumeJobs("text.summarize", {
 *   concurrency: 4,
 *   async handler(d) {
 *     await doWork(d.data);
 *     d.ack();
 *   },
 * });
 * await bus.publishJob(create(StepJobSchema, { attemptId, capability: "text.summarize", ... }));
 * await sub.stop();
 * await bus.close();
 */
import type { GoalEvent } from "../../gen/agentmesh/v1/executor_pb.js";
import type {
  CancelSignal,
  DeadLetter,
  Outcome,
  StepJob,
  StepResult,
  TrainingJob,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, MeshError } from "../errors/mesh-error.js";

/** Which implementation a bus is. */
export type BusKind = "jetstream" | "in-process";

/** Delivery settings shared by both implementations; every field has a default. */
export interface BusOptions {
  /**
   * Root of every subject and stream name, so test runs isolate themselves.
   * Default `"agentmesh"`: subjects `agentmesh.jobs.<capability>`, streams `AGENTMESH_JOBS`.
   */
  prefix?: string;
  /** Time a delivery may stay unsettled before it is delivered again. Default 30 s. */
  ackWaitMs?: number;
  /** Deliveries before a message is dead-lettered. Default 5. */
  maxDeliver?: number;
  /** Unsettled deliveries a consumer may have across all its subscribers (backpressure). Default 1,000. */
  maxAckPending?: number;
  /** Window in which a repeated message id is dropped as a duplicate. Default 2 min. */
  duplicateWindowMs?: number;
  /** How long goal events are kept for replay. Default 24 h. */
  eventsMaxAgeMs?: number;
  /** How long dead letters are kept. Default 7 days. */
  deadLetterMaxAgeMs?: number;
}

/** The options above with their defaults applied. */
export type ResolvedBusOptions = Required<BusOptions>;

export function resolveBusOptions(options: BusOptions = {}): ResolvedBusOptions {
  return {
    prefix: options.prefix ?? "agentmesh",
    ackWaitMs: options.ackWaitMs ?? 30_000,
    maxDeliver: options.maxDeliver ?? 5,
    maxAckPending: options.maxAckPending ?? 1_000,
    duplicateWindowMs: options.duplicateWindowMs ?? 120_000,
    eventsMaxAgeMs: options.eventsMaxAgeMs ?? 24 * 3_600_000,
    deadLetterMaxAgeMs: options.deadLetterMaxAgeMs ?? 7 * 24 * 3_600_000,
  };
}

/**
 * How the previous delivery of a message ended: `none` (this is the first
 * delivery), `handed-back` (its holder gave it back with `nak`, e.g. when it
 * drained), or `lost` (it was not settled within the ack wait: its holder
 * crashed, was killed, stalled or lost its connection, possibly mid-job).
 */
export type PreviousDelivery = "none" | "handed-back" | "lost";

/**
 * One delivery of one message. Settle it exactly once; later calls are no-ops.
 * A handler that returns without settling acks; one that throws naks with backoff.
 */
export interface Delivery<T> {
  /** The decoded message. */
  readonly data: T;
  /** Subject it was published on. */
  readonly subject: string;
  /** The publisher's message id (the step attempt id for jobs). */
  readonly msgId: string | undefined;
  /** Which delivery this is, from 1. */
  readonly deliveryCount: number;
  /** Deliveries allowed before the message is dead-lettered. */
  readonly maxDeliver: number;
  /** Time this delivery may stay unsettled before redelivery; `working()` restarts it. */
  readonly ackWaitMs: number;
  /** Position in its stream (0 when the implementation has none). */
  readonly streamSequence: number;
  /** W3C trace context the publisher sent, if any. */
  readonly traceparent: string | undefined;
  /** Whether ack/nak/term/deadLetter was called. */
  readonly settled: boolean;
  /**
   * How the previous delivery of this message ended. Step job queues record every
   * hand-back (`nak`) for this; other queues do not, so their redeliveries read `lost`.
   */
  previousDelivery(): Promise<PreviousDelivery>;
  /** Done: remove the message from the queue. */
  ack(): void;
  /** Not done: deliver again after `delayMs` (default immediately). */
  nak(delayMs?: number): void;
  /** Still working: restart the ack-wait timer. */
  working(): void;
  /** Never deliver again (poison message); it leaves the queue. */
  term(): void;
  /** Move the message to the dead-letter subject with `reason`, then remove it from the queue. */
  deadLetter(reason: string): Promise<void>;
}

export type DeliveryHandler<T> = (delivery: Delivery<T>) => void | Promise<void>;

export interface ConsumeOptions<T> {
  /** Called once per delivery; at most `concurrency` calls run at once. */
  handler: DeliveryHandler<T>;
  /** Handlers running at once in this subscription. Default 1. */
  concurrency?: number;
  /** Messages pulled ahead of free handler slots. Default `concurrency`. */
  prefetch?: number;
  /** Delay of the automatic nak when a handler throws, by delivery count. Default 1 s × 2^(n-1), max 30 s. */
  backoff?: (deliveryCount: number) => number;
}

/** How an agent consumes a capability's jobs. */
export interface JobConsumeOptions extends ConsumeOptions<StepJob> {
  /**
   * Consume the queue of this agent version's jobs (steps with a version range the
   * executor pinned to it, `StepJob.agent_version`) instead of the capability's shared
   * queue. Only agents of that version may subscribe: the queue is the guarantee that
   * a step constrained to a range never reaches an agent outside it (ADR-015).
   */
  agentVersion?: string;
}

export interface StopOptions {
  /** How long in-flight handlers may finish before their messages are handed back (nak). Default 30 s. */
  graceMs?: number;
}

export interface StopResult {
  /** Handlers that finished within the grace period. */
  finished: number;
  /** Messages handed back to the queue unfinished. */
  handedBack: number;
}

/** A running consumer. */
export interface Subscription {
  /** Handlers running now. */
  readonly inFlight: number;
  /** Stops pulling, lets in-flight handlers finish within the grace period, hands back the rest. */
  stop(options?: StopOptions): Promise<StopResult>;
}

/** A live feed of one goal's events: its history first, then new events. */
export interface GoalEventFeed extends AsyncIterable<GoalEvent> {
  stop(): Promise<void>;
}

export interface Unsubscribe {
  unsubscribe(): void;
}

export interface PublishOptions {
  /** W3C traceparent; default taken from the active OpenTelemetry context, if any. */
  traceparent?: string;
  /**
   * Wait for the stream to confirm it stored the message. Default true. False sends
   * and returns at once (`seq` 0): for reports whose loss costs nothing, like STARTED.
   */
  awaitAck?: boolean;
  /**
   * While the broker connection is down, wait up to this long for it to come back
   * instead of failing. Default 0: fail at once with UNAVAILABLE, so a caller with
   * a deadline (an RPC accepting a goal) answers fast. A publish waiting for its
   * confirmation when the connection drops fails (or waits) the same way.
   */
  waitForConnectionMs?: number;
}

export interface PublishAck {
  /** Stream sequence of the stored message. */
  seq: number;
  /** True when the message id was seen within the duplicate window and the message was dropped. */
  duplicate: boolean;
}

/** Queue figures of one capability, also exported as Prometheus gauges. */
export interface QueueStats {
  capability: string;
  /** Messages waiting or in flight (`lag + ackPending`). */
  depth: number;
  /** Messages not yet delivered to any agent. */
  lag: number;
  /** Messages delivered and not yet settled. */
  ackPending: number;
  /** Messages delivered more than once and still unsettled. */
  redelivered: number;
}

export interface ListDeadLettersOptions {
  /** Only this capability's dead letters; default every subject. */
  capability?: string;
  /** At most this many, oldest first. Default 100. */
  limit?: number;
}

export interface JobBus {
  readonly kind: BusKind;
  readonly options: ResolvedBusOptions;
  /**
   * The identity the broker authenticated this client as (NATS over mutual TLS,
   * whose permissions bind result subjects to identities); undefined otherwise.
   */
  readonly identity?: string | undefined;

  /**
   * Throws UNAVAILABLE when a publish would fail now (the broker connection is
   * down): for callers that must not accept work they cannot hand on.
   */
  checkAvailable(): void;

  /**
   * What a consumer is waiting for before it can start, e.g. a stream this
   * identity may not create and the executor has not created yet (an agent on
   * a mutual-TLS NATS started first); undefined when nothing.
   */
  waitingFor?(): string | undefined;

  /**
   * Publishes a step attempt on `jobs.<capability>` (with `agent_version` set, on that
   * version's queue `jobs._v.<version>.<capability>`), deduplicated by `attemptId`.
   */
  publishJob(job: StepJob, options?: PublishOptions): Promise<PublishAck>;
  /**
   * Consumes one capability's jobs through its durable consumer, shared by
   * every subscriber of that capability (and version, `agentVersion`) in every
   * process. Provisions it.
   */
  consumeJobs(capability: string, options: JobConsumeOptions): Promise<Subscription>;
  /** Provisions a capability's consumer without consuming (so depth and lag are visible). */
  ensureCapability(capability: string): Promise<void>;

  /** Publishes an agent's report on `results.<goal>`, deduplicated by attempt id and status. */
  publishResult(result: StepResult, options?: PublishOptions): Promise<PublishAck>;
  /** Consumes every goal's results through one durable consumer shared by executor replicas. */
  consumeResults(options: ConsumeOptions<StepResult>): Promise<Subscription>;

  /** Publishes on `events.<tenant>.<goal>`, deduplicated by goal and sequence. */
  publishGoalEvent(event: GoalEvent, options?: PublishOptions): Promise<PublishAck>;
  /** The goal's stored events, then live ones, until `stop()`. */
  subscribeGoalEvents(tenantId: string, goalId: string): Promise<GoalEventFeed>;
  /** Removes every stored event of the tenant's goals (its erasure); returns how many. */
  purgeGoalEvents(tenantId: string): Promise<number>;

  /** Publishes a finished goal's outcome on `learning.outcomes`. */
  publishOutcome(outcome: Outcome, options?: PublishOptions): Promise<PublishAck>;
  consumeOutcomes(options: ConsumeOptions<Outcome>): Promise<Subscription>;
  /** Publishes a training request on `learning.training`, deduplicated by run id. */
  publishTraining(job: TrainingJob, options?: PublishOptions): Promise<PublishAck>;
  consumeTraining(options: ConsumeOptions<TrainingJob>): Promise<Subscription>;

  /** Broadcasts a cancellation on `control.cancel.<goal>` (not persisted: only live listeners hear it). */
  publishCancel(signal: CancelSignal): Promise<void>;
  /** Listens for cancellations of every goal, or of one goal. */
  subscribeCancel(handler: (signal: CancelSignal) => void, goalId?: string): Unsubscribe;

  /** Dead letters, oldest first. */
  listDeadLetters(options?: ListDeadLettersOptions): Promise<DeadLetter[]>;
  /** Depth, lag and in-flight counts of every provisioned capability. */
  stats(): Promise<QueueStats[]>;
  /** Dead letters kept now, by queue (a capability, or `_results`, `_outcomes`, `_training`). */
  deadLetterCounts(): Promise<Map<string, number>>;

  /** Stops every subscription (see `Subscription.stop`) and closes the connection. */
  close(options?: StopOptions): Promise<void>;
}

/** The default automatic-nak backoff: 1 s, 2 s, 4 s, ... capped at 30 s. */
export function defaultBackoff(deliveryCount: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, deliveryCount - 1), 30_000);
}

/**
 * What a publish above the broker's max payload throws: RESOURCE_EXHAUSTED naming
 * the size, not retryable (the same message would be refused again).
 */
export function payloadTooLarge(subject: string, bytes: number, maxPayload: number): MeshError {
  return new MeshError(
    Code.ResourceExhausted,
    `a message of ${bytes} bytes on ${subject} exceeds the bus's max payload of ${maxPayload} bytes`,
    { retryable: false, details: { bytes, maxPayload } },
  );
}
