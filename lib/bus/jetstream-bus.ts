/**
 * The job bus on NATS JetStream (server 2.9+). At start it provisions, idempotently,
 * the streams of DESIGN.md's table — work-queue streams for jobs, results and
 * learning, limits streams for goal events and dead letters — and one durable,
 * filtered, explicit-ack consumer per capability (created when a capability is
 * first consumed or ensured), shared by every agent offering it.
 *
 * Dead letters: NATS 2.9 leaves a message that exhausted `max_deliver` in a
 * work-queue stream forever, so the bus listens (in a queue group, so one
 * process acts) for the `MAX_DELIVERIES` advisory, copies the message to
 * `<prefix>.dlq.<capability>` with the reason and deletes it from the queue.
 *
 * Hot path: a publish is one PUB whose PubAck is matched on a shared inbox
 * (`PubAckInbox`); acks are fire-and-forget (no `ackAck`); deliveries arrive
 * by callback and start their handlers synchronously, and the connection the
 * bus opens writes once per event-loop turn (`coalesce-writes.ts`), so the
 * replies and acks of a batch of jobs leave in one socket write rather than one each.
 *
 * The connection reconnects forever by itself and pull consumers resume after
 * a reconnect. While it is down a publish fails at once with UNAVAILABLE
 * (nothing would be stored, and what nats.js buffers meanwhile is dropped when
 * it dials again) unless the caller allows a wait (`waitForConnectionMs`);
 * publishes waiting for a PubAck when it drops fail the same way. A publish
 * that times out while connected is retried with the same `Nats-Msg-Id`,
 * which the stream deduplicates.
 *
 * @example
 * const bus = await createJetStreamBus({ servers: "nats://127.0.0.1:4222", prefix: "agentmesh" });
 */
import { create, fromBinary, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import {
  connect,
  type NatsConnection,
  type Subscription as NatsSubscription,
  nanos,
  headers as natsHeaders,
} from "@nats-io/transport-node";
import { type GoalEvent, GoalEventSchema } from "../../gen/agentmesh/v1/executor_pb.js";
import {
  type CancelSignal,
  CancelSignalSchema,
  type DeadLetter,
  DeadLetterSchema,
  type Outcome,
  OutcomeSchema,
  type StepJob,
  StepJobSchema,
  type StepResult,
  StepResultSchema,
  type TrainingJob,
  TrainingJobSchema,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { Code, isMeshError, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import { encodeBinary } from "../proto/binary-encoder.js";
import { useFastUtf8Encoding } from "../proto/fast-utf8.js";
import { mark, stageTraceOn } from "../telemetry/stage-trace.js";
import {
  type BusNames,
  busNames,
  checkCapability,
  jobConsumerName,
  pinnedConsumerName,
} from "./bus-names.js";
import { coalesceWrites } from "./coalesce-writes.js";
import { HandlerPool } from "./handler-pool.js";
import {
  type BusOptions,
  type ConsumeOptions,
  type Delivery,
  defaultBackoff,
  type GoalEventFeed,
  type JobBus,
  type JobConsumeOptions,
  type ListDeadLettersOptions,
  type PreviousDelivery,
  type PublishAck,
  type PublishOptions,
  payloadTooLarge,
  type QueueStats,
  type ResolvedBusOptions,
  resolveBusOptions,
  type StopOptions,
  type StopResult,
  type Subscription,
  type Unsubscribe,
} from "./job-bus.js";
import {
  deadLetterMsgId,
  eventMsgId,
  jobMsgId,
  outcomeMsgId,
  resultMsgId,
  trainingMsgId,
} from "./message-ids.js";
import { isStreamNotFound, jobConsumeError } from "./nats-errors.js";
import { inboxPrefixOf } from "./nats-permissions.js";
import type { NatsTlsConnectOptions } from "./nats-tls.js";
import { PubAckInbox } from "./pub-ack-inbox.js";
import { currentTraceparent } from "./trace-context.js";

/**
 * How long one pull request waits. nats.js also uses it as the pause before it
 * looks for a consumer again when the look after a reconnect fails (JetStream
 * still recovering after a server restart): at the default 30 s a consumer could
 * stay idle for half a minute after NATS came back. Idle heartbeats are half of it.
 */
const pullExpiresMs = 5_000;

/**
 * The results consumer's ack wait. A live executor keeps what it holds alive, so
 * this only bounds how long results pulled by an executor that died stay hidden
 * from the others: well inside a step's timeout, or its step would be run again.
 */
const resultsAckWaitMs = 5_000;

/**
 * How often a client that may not create streams (an agent on a mutual-TLS
 * NATS) looks again for one that is not there yet: the executor creates it
 * when it starts, so start-up order does not matter.
 */
const streamWaitMs = 1_000;

export interface JetStreamBusOptions extends BusOptions {
  /** An open connection to use (the bus will not close it); else one is opened to `servers`. */
  connection?: NatsConnection;
  /** NATS URL(s) when no connection is given. Default `nats://127.0.0.1:4222`. */
  servers?: string | string[];
  /** Client name shown by the server. Default `agentmesh`. */
  name?: string;
  /** Move messages that exhausted their deliveries to the dead-letter stream. Default true. */
  deadLetterMover?: boolean;
  /** PubAck timeout of one publish attempt. Default 5 s. */
  publishTimeoutMs?: number;
  /** Publish attempts on timeout or lost connection, same message id each time. Default 3. */
  publishAttempts?: number;
  /**
   * Create or update the streams at start. Default true. False for clients whose
   * permissions do not allow it (agents on a mutual-TLS NATS): the executor provisions.
   */
  provision?: boolean;
  /**
   * The identity this client is on the bus (its SPIFFE service-account name): its
   * results go out on `<prefix>.results.<identity>.<goal>`, its inboxes are
   * `_INBOX.<identity>.*`. Default none (results on `<prefix>.results.anonymous.<goal>`).
   */
  identity?: string;
  /** Mutual TLS with the identity's certificate (see `nats-tls.ts`); the server then vouches for `identity`. */
  tls?: NatsTlsConnectOptions;
  /**
   * Write what a turn of the event loop published in one socket write (`coalesce-writes.ts`)
   * rather than one per microtask checkpoint. Only for the connection the bus opens. Default true.
   */
  coalesceWrites?: boolean;
  log?: Logger;
}

/** Connection settings beyond the servers. */
export interface NatsConnectOptions {
  /** Mutual TLS options (`natsTlsOptions(...).options`). */
  tls?: NatsTlsConnectOptions;
  /** Prefix of this client's inboxes; a NATS with per-identity permissions allows only its own. */
  inboxPrefix?: string;
}

/** Opens a NATS connection with the mesh's reconnect settings (forever, 1 s apart, jittered). */
export function connectNats(
  servers: string | string[],
  name = "agentmesh",
  timeoutMs = 2_000,
  options: NatsConnectOptions = {},
): Promise<NatsConnection> {
  return connect({
    servers,
    name,
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.inboxPrefix ? { inboxPrefix: options.inboxPrefix } : {}),
    timeout: timeoutMs,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    reconnectJitter: 500,
    pingInterval: 10_000,
    maxPingOut: 3,
    // Async stack traces cost an Error per request, i.e. per JetStream publish.
    noAsyncTraces: true,
  });
}

export async function createJetStreamBus(options: JetStreamBusOptions = {}): Promise<JobBus> {
  useFastUtf8Encoding();
  const log = options.log ?? createLogger({ name: "bus" });
  const nc =
    options.connection ??
    (await connectNats(options.servers ?? "nats://127.0.0.1:4222", options.name, 2_000, {
      ...(options.tls ? { tls: options.tls } : {}),
      ...(options.identity ? { inboxPrefix: inboxPrefixOf(options.identity) } : {}),
    }).catch((err) => {
      throw new MeshError(Code.Unavailable, `NATS is not reachable: ${String(err)}`, {
        cause: err,
      });
    }));
  // Its own connection writes once per event-loop turn (a connection given is left as it is).
  if (options.connection === undefined && (options.coalesceWrites ?? true)) coalesceWrites(nc);
  const bus = new JetStreamBus(nc, options.connection === undefined, options, log);
  try {
    await bus.provision();
  } catch (err) {
    if (options.connection === undefined) await nc.close();
    throw MeshError.from(err, Code.Unavailable);
  }
  return bus;
}

/** How long a hand-back record is kept: far longer than a handed-back job waits for an agent. */
const handBackMaxAgeMs = 24 * 3_600_000;

/** Where a message of a queue goes when it is dead-lettered. */
function dlqNameFor(names: BusNames, subject: string): string {
  const capability = names.capabilityOf(subject) ?? names.pinnedOf(subject)?.capability;
  if (capability !== undefined) return capability;
  if (subject === names.outcomesSubject) return "_outcomes";
  if (subject === names.trainingSubject) return "_training";
  return "_results";
}

class JetStreamBus implements JobBus {
  readonly kind = "jetstream" as const;
  readonly options: ResolvedBusOptions;
  readonly names: BusNames;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  jsm!: JetStreamManager;
  readonly log: Logger;
  readonly #owned: boolean;
  readonly #moveDeadLetters: boolean;
  readonly #provision: boolean;
  /** The identity the server authenticated (mutual TLS); undefined on a plaintext connection. */
  readonly identity: string | undefined;
  readonly #publisher: string | undefined;
  readonly #publishTimeoutMs: number;
  readonly #publishAttempts: number;
  readonly #consumers = new Map<string, Promise<void>>();
  readonly #subscriptions = new Set<JetStreamSubscription<never>>();
  readonly #natsSubs: NatsSubscription[] = [];
  readonly #feeds = new Set<GoalEventFeed>();
  readonly #acks: PubAckInbox;
  /** Hand-back records being written; close waits for them. */
  readonly #handBacks = new Set<Promise<void>>();
  #connected = true;
  /** Streams consumers wait for (this identity may not create them). */
  readonly #missingStreams = new Set<string>();
  /** Resolves at the next reconnect; replaced at each disconnect. */
  #reconnected = openSignal();
  #closed = false;

  constructor(nc: NatsConnection, owned: boolean, options: JetStreamBusOptions, log: Logger) {
    this.nc = nc;
    this.#owned = owned;
    this.options = resolveBusOptions(options);
    this.names = busNames(this.options.prefix);
    this.log = log;
    this.#moveDeadLetters = options.deadLetterMover ?? true;
    this.#provision = options.provision ?? true;
    this.#publisher = options.identity;
    this.identity = options.tls ? options.identity : undefined;
    this.#publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
    this.#publishAttempts = Math.max(1, options.publishAttempts ?? 3);
    this.js = jetstream(nc);
    this.#acks = new PubAckInbox(nc, options.identity && inboxPrefixOf(options.identity));
    void this.#watchStatus();
  }

  async #watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === "disconnect") {
        this.log.warn({ server: s.server }, "NATS disconnected");
        this.#connected = false;
        this.#reconnected = openSignal();
        this.#acks.failAll(
          new MeshError(
            Code.Unavailable,
            "NATS connection lost before the stream confirmed the publish",
          ),
        );
      } else if (s.type === "reconnect") {
        this.log.info({ server: s.server }, "NATS reconnected");
        this.#connected = true;
        this.#reconnected.resolve();
      }
    }
  }

  checkAvailable(): void {
    this.#open();
    if (!this.#connected) throw disconnected();
  }

  /** Resolves once connected, waiting at most `waitMs`; else throws UNAVAILABLE. */
  async #connection(waitMs: number): Promise<void> {
    if (this.#connected) return;
    if (waitMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.#reconnected.promise,
        new Promise((r) => {
          timer = setTimeout(r, waitMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.#open();
    if (!this.#connected) throw disconnected();
  }

  async provision(): Promise<void> {
    this.jsm = await jetstreamManager(this.nc);
    if (this.#moveDeadLetters) this.#listenForMaxDeliveries();
    if (!this.#provision) return;
    const o = this.options;
    const n = this.names;
    const base = { storage: StorageType.File, duplicate_window: nanos(o.duplicateWindowMs) };
    const wq = { ...base, retention: RetentionPolicy.Workqueue, discard: DiscardPolicy.Old };
    await Promise.all([
      this.#ensureStream({ ...wq, name: n.streams.jobs, subjects: [n.jobsWildcard] }),
      this.#ensureStream({ ...wq, name: n.streams.results, subjects: [n.resultsWildcard] }),
      this.#ensureStream({ ...wq, name: n.streams.learning, subjects: [n.learningWildcard] }),
      this.#ensureStream({
        ...base,
        name: n.streams.events,
        subjects: [n.eventsWildcard],
        retention: RetentionPolicy.Limits,
        max_age: nanos(o.eventsMaxAgeMs),
      }),
      this.#ensureStream({
        ...base,
        name: n.streams.dlq,
        subjects: [n.dlqWildcard],
        retention: RetentionPolicy.Limits,
        max_age: nanos(o.deadLetterMaxAgeMs),
      }),
      // The last hand-back of each stored job; a job is redelivered soon after one.
      this.#ensureStream({
        ...base,
        name: n.streams.handBacks,
        subjects: [n.handBacksWildcard],
        retention: RetentionPolicy.Limits,
        max_msgs_per_subject: 1,
        max_age: nanos(handBackMaxAgeMs),
      }),
    ]);
  }

  /** Creates the stream, or brings an existing one to this configuration. */
  async #ensureStream(config: Partial<StreamConfig> & { name: string }): Promise<void> {
    try {
      await this.jsm.streams.add(config);
    } catch (err) {
      // Exists with another configuration (another version, other limits): update in place.
      const info = await this.jsm.streams.info(config.name).catch(() => undefined);
      if (!info) throw err;
      await this.jsm.streams.update(config.name, { ...info.config, ...config });
    }
  }

  /** Creates the durable consumer, or updates the editable fields of an existing one. */
  #ensureConsumer(
    stream: string,
    durable: string,
    filterSubject: string,
    ackWaitMs = this.options.ackWaitMs,
  ): Promise<void> {
    const key = `${stream}/${durable}`;
    let p = this.#consumers.get(key);
    if (!p) {
      const o = this.options;
      const config: Partial<ConsumerConfig> = {
        durable_name: durable,
        filter_subject: filterSubject,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait: nanos(ackWaitMs),
        max_deliver: o.maxDeliver,
        max_ack_pending: o.maxAckPending,
      };
      const addOrUpdate = () =>
        this.jsm.consumers.add(stream, config).then(
          () => undefined,
          async (err) => {
            const info = await this.jsm.consumers.info(stream, durable).catch(() => undefined);
            if (!info) throw err;
            await this.jsm.consumers.update(stream, durable, {
              ack_wait: config.ack_wait,
              max_deliver: config.max_deliver,
              max_ack_pending: config.max_ack_pending,
            });
          },
        );
      p = this.#untilStreamExists(stream, durable, addOrUpdate).catch((err) => {
        this.#consumers.delete(key);
        throw MeshError.from(err, Code.Unavailable);
      });
      this.#consumers.set(key, p);
    }
    return p;
  }

  /**
   * Runs `attempt`; a client that may not create streams (`provision: false`)
   * waits while the stream is missing (it has not been created yet by the
   * executor), saying so once, until it exists or the bus closes.
   */
  async #untilStreamExists(
    stream: string,
    consumer: string,
    attempt: () => Promise<void>,
  ): Promise<void> {
    try {
      for (let waits = 0; ; waits++) {
        try {
          await attempt();
          if (waits > 0) this.log.info({ stream, consumer }, "stream is there now; consuming");
          return;
        } catch (err) {
          if (this.#provision || !isStreamNotFound(err)) throw err;
          if (waits === 0) {
            this.#missingStreams.add(stream);
            this.log.warn(
              { stream, consumer, identity: this.#publisher },
              `stream ${stream} does not exist yet and this identity may not create it: waiting for the executor to create it`,
            );
          }
          await new Promise((r) => setTimeout(r, streamWaitMs));
          this.#open();
        }
      }
    } finally {
      this.#missingStreams.delete(stream);
    }
  }

  waitingFor(): string | undefined {
    if (this.#missingStreams.size === 0) return undefined;
    return `stream ${[...this.#missingStreams].join(", ")} (the executor creates it; this identity may not)`;
  }

  #open(): void {
    if (this.#closed) throw new MeshError(Code.FailedPrecondition, "job bus is closed");
  }

  async #publish<T extends Message>(
    subject: string,
    schema: GenMessage<T>,
    message: T,
    msgID: string,
    options?: PublishOptions,
  ): Promise<PublishAck> {
    this.#open();
    return this.#publishBytes(subject, encodeBinary(schema, message), msgID, options);
  }

  async #publishBytes(
    subject: string,
    data: Uint8Array,
    msgID: string,
    options?: PublishOptions,
  ): Promise<PublishAck> {
    const h = natsHeaders();
    h.set("Nats-Msg-Id", msgID);
    const traceparent = options?.traceparent ?? currentTraceparent();
    if (traceparent) h.set("traceparent", traceparent);
    // Refused by the broker anyway: say so with the size, not a generic invalid argument.
    const maxPayload = this.nc.info?.max_payload ?? Infinity;
    if (data.length + 4_096 > maxPayload) {
      let size = data.length + 12; // "NATS/1.0\r\n" and the closing "\r\n"
      for (const [k, vs] of h) for (const v of vs) size += k.length + v.length + 4;
      if (size > maxPayload) throw payloadTooLarge(subject, size, maxPayload);
    }
    const giveUpAt = Date.now() + (options?.waitForConnectionMs ?? 0);
    if (options?.awaitAck === false) {
      if (!this.#connected) await this.#connection(giveUpAt - Date.now());
      // Stored by the stream like any publish on its subjects; nobody waits for the PubAck.
      this.nc.publish(subject, data, { headers: h });
      return { seq: 0, duplicate: false };
    }
    for (let timeouts = 0; ; ) {
      if (!this.#connected) await this.#connection(giveUpAt - Date.now());
      try {
        return await this.#acks.publish(subject, data, h, this.#publishTimeoutMs);
      } catch (err) {
        if (this.#closed || this.nc.isClosed()) throw MeshError.from(err, Code.Unavailable);
        // Lost the connection meanwhile: the loop waits for it within the caller's budget.
        if (!this.#connected) {
          if (Date.now() < giveUpAt) continue;
          throw err;
        }
        if (!isMeshError(err) || err.code !== Code.DeadlineExceeded) throw err;
        if (++timeouts >= this.#publishAttempts) {
          throw new MeshError(
            Code.Unavailable,
            `publish to ${subject} failed: no PubAck in ${timeouts} attempts`,
            { cause: err },
          );
        }
        this.log.warn({ subject, attempt: timeouts }, "publish timed out; retrying, same id");
        await new Promise((r) => setTimeout(r, 200 * timeouts));
      }
    }
  }

  async publishJob(job: StepJob, options?: PublishOptions): Promise<PublishAck> {
    const subject = job.agentVersion
      ? this.names.pinnedJobSubject(job.capability, job.agentVersion)
      : this.names.jobSubject(job.capability);
    return this.#publish(subject, StepJobSchema, job, jobMsgId(job), options);
  }

  async ensureCapability(capability: string): Promise<void> {
    this.#open();
    const subject = this.names.jobSubject(capability);
    await this.#ensureConsumer(this.names.streams.jobs, jobConsumerName(capability), subject);
  }

  async consumeJobs(capability: string, options: JobConsumeOptions): Promise<Subscription> {
    checkCapability(capability);
    const version = options.agentVersion;
    try {
      let durable = jobConsumerName(capability);
      if (version) {
        this.#open();
        durable = pinnedConsumerName(capability, version);
        const subject = this.names.pinnedJobSubject(capability, version);
        await this.#ensureConsumer(this.names.streams.jobs, durable, subject);
      } else {
        await this.ensureCapability(capability);
      }
      return await this.#consume(this.names.streams.jobs, durable, StepJobSchema, options);
    } catch (err) {
      // Refused by the server's permissions: PERMISSION_DENIED naming the grant, not retried.
      throw jobConsumeError(err, { identity: this.#publisher, capability });
    }
  }

  async publishResult(result: StepResult, options?: PublishOptions): Promise<PublishAck> {
    const subject = this.names.resultSubject(result.goalId, this.#publisher);
    return this.#publish(subject, StepResultSchema, result, resultMsgId(result), options);
  }

  async consumeResults(options: ConsumeOptions<StepResult>): Promise<Subscription> {
    this.#open();
    const s = this.names.streams.results;
    await this.#ensureConsumer(
      s,
      "results",
      this.names.resultsWildcard,
      Math.min(this.options.ackWaitMs, resultsAckWaitMs),
    );
    return this.#consume(s, "results", StepResultSchema, options);
  }

  async publishGoalEvent(event: GoalEvent, options?: PublishOptions): Promise<PublishAck> {
    const subject = this.names.eventSubject(event.tenantId, event.goalId);
    return this.#publish(subject, GoalEventSchema, event, eventMsgId(event), options);
  }

  async subscribeGoalEvents(tenantId: string, goalId: string): Promise<GoalEventFeed> {
    this.#open();
    const subject = this.names.eventSubject(tenantId, goalId);
    // An ordered consumer replays the stored history, then follows live events.
    const consumer = await this.js.consumers.get(this.names.streams.events, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.All,
    });
    const messages = await consumer.consume({ expires: pullExpiresMs });
    const feeds = this.#feeds;
    const feed: GoalEventFeed = {
      async stop() {
        feeds.delete(feed);
        await messages.close();
        // The server keeps an ordered consumer 5 min after its last pull: one per watch
        // piled up (2,000 watches met the server's consumer limit), so it goes now.
        await consumer.delete().catch(() => false);
      },
      async *[Symbol.asyncIterator]() {
        for await (const m of messages) yield fromBinary(GoalEventSchema, m.data);
      },
    };
    feeds.add(feed);
    return feed;
  }

  async purgeGoalEvents(tenantId: string): Promise<number> {
    this.#open();
    const { purged } = await this.jsm.streams.purge(this.names.streams.events, {
      filter: this.names.tenantEventsWildcard(tenantId),
    });
    return purged;
  }

  async publishOutcome(outcome: Outcome, options?: PublishOptions): Promise<PublishAck> {
    const s = this.names.outcomesSubject;
    return this.#publish(s, OutcomeSchema, outcome, outcomeMsgId(outcome), options);
  }

  async consumeOutcomes(options: ConsumeOptions<Outcome>): Promise<Subscription> {
    this.#open();
    const s = this.names.streams.learning;
    await this.#ensureConsumer(s, "outcomes", this.names.outcomesSubject);
    return this.#consume(s, "outcomes", OutcomeSchema, options);
  }

  async publishTraining(job: TrainingJob, options?: PublishOptions): Promise<PublishAck> {
    const s = this.names.trainingSubject;
    return this.#publish(s, TrainingJobSchema, job, trainingMsgId(job), options);
  }

  async consumeTraining(options: ConsumeOptions<TrainingJob>): Promise<Subscription> {
    this.#open();
    const s = this.names.streams.learning;
    await this.#ensureConsumer(s, "training", this.names.trainingSubject);
    return this.#consume(s, "training", TrainingJobSchema, options);
  }

  async publishCancel(signal: CancelSignal): Promise<void> {
    this.#open();
    this.nc.publish(
      this.names.cancelSubject(signal.goalId),
      encodeBinary(CancelSignalSchema, signal),
    );
    await this.nc.flush();
  }

  subscribeCancel(handler: (signal: CancelSignal) => void, goalId?: string): Unsubscribe {
    this.#open();
    const subject =
      goalId === undefined ? this.names.cancelWildcard : this.names.cancelSubject(goalId);
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          handler(fromBinary(CancelSignalSchema, msg.data));
        } catch (e) {
          this.log.warn({ err: e, subject: msg.subject }, "bad cancel signal ignored");
        }
      },
    });
    this.#natsSubs.push(sub);
    return { unsubscribe: () => sub.unsubscribe() };
  }

  async #consume<T extends Message>(
    stream: string,
    durable: string,
    schema: GenMessage<T>,
    options: ConsumeOptions<T>,
  ): Promise<Subscription> {
    const consumer = await this.js.consumers.get(stream, durable);
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    const prefetch = Math.max(1, Math.floor(options.prefetch ?? concurrency));
    const job = stream === this.names.streams.jobs;
    const sub = new JetStreamSubscription<T>(this, schema, options, concurrency, job);
    sub.traceResults = stageTraceOn && stream === this.names.streams.results;
    await sub.start(consumer, prefetch);
    this.#subscriptions.add(sub as unknown as JetStreamSubscription<never>);
    void sub.closed.finally(() =>
      this.#subscriptions.delete(sub as unknown as JetStreamSubscription<never>),
    );
    return sub;
  }

  /**
   * Records that delivery `delivery` of the job stored at `seq` was handed back,
   * so its redelivery knows it may run (see `Delivery.previousDelivery`). Never
   * throws: without the record the redelivery counts as lost and is not run.
   */
  recordHandBack(subject: string, seq: number, delivery: number): Promise<void> {
    const p = this.#publishBytes(
      this.#handBackSubject(subject, seq),
      new TextEncoder().encode(String(delivery)),
      `handback.${seq}.${delivery}`,
    ).then(
      () => undefined,
      (err) => this.log.warn({ err, seq }, "hand-back not recorded; its redelivery will not run"),
    );
    this.#handBacks.add(p);
    void p.finally(() => this.#handBacks.delete(p));
    return p;
  }

  /** The delivery number of the last recorded hand-back of the job stored at `seq` (0: none). */
  async lastHandBack(subject: string, seq: number): Promise<number> {
    const m = await this.jsm.streams
      .getMessage(this.names.streams.handBacks, {
        last_by_subj: this.#handBackSubject(subject, seq),
      })
      .catch(() => null);
    return m ? Number(new TextDecoder().decode(m.data)) || 0 : 0;
  }

  /** Keyed by capability too, so the bus's permissions can limit an agent to its own jobs. */
  #handBackSubject(jobSubject: string, seq: number): string {
    const capability =
      this.names.capabilityOf(jobSubject) ?? this.names.pinnedOf(jobSubject)?.capability;
    return this.names.handBackSubject(capability ?? "_", seq);
  }

  /** Copies a stored message to its dead-letter subject (deduplicated per stream sequence). */
  async writeDeadLetter(
    stream: string,
    seq: number,
    subject: string,
    payload: Uint8Array,
    deliveries: number,
    reason: string,
  ): Promise<void> {
    const letter = create(DeadLetterSchema, {
      subject,
      reason,
      deliveries,
      payload,
      time: timestampFromMs(Date.now()),
      streamSequence: BigInt(seq),
    });
    const dlq = this.names.dlqSubject(dlqNameFor(this.names, subject));
    await this.#publish(dlq, DeadLetterSchema, letter, deadLetterMsgId(stream, seq, subject));
    this.log.warn({ subject, seq, deliveries, reason }, "message dead-lettered");
  }

  #listenForMaxDeliveries(): void {
    const n = this.names;
    for (const stream of [n.streams.jobs, n.streams.results, n.streams.learning]) {
      const sub = this.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`, {
        // One process of the mesh moves each message.
        queue: `${n.prefix}-dlq-mover`,
        callback: (err, msg) => {
          if (err) return;
          void this.#moveExhausted(msg.json<MaxDeliveriesAdvisory>()).catch((e) =>
            this.log.error({ err: e }, "could not dead-letter an exhausted message"),
          );
        },
      });
      this.#natsSubs.push(sub);
    }
  }

  async #moveExhausted(advisory: MaxDeliveriesAdvisory): Promise<void> {
    const { stream, stream_seq: seq, deliveries } = advisory;
    const stored = await this.jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!stored) return; // already acked, moved or deleted
    const reason = `max deliveries (${deliveries}) exceeded`;
    await this.writeDeadLetter(stream, seq, stored.subject, stored.data, deliveries, reason);
    await this.jsm.streams.deleteMessage(stream, seq, false).catch(() => false);
  }

  async listDeadLetters(options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    this.#open();
    const limit = options.limit ?? 100;
    const filter =
      options.capability === undefined
        ? this.names.dlqWildcard
        : this.names.dlqSubject(checkCapability(options.capability));
    const info = await this.jsm.streams.info(this.names.streams.dlq, { subjects_filter: filter });
    const total = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    const want = Math.min(limit, total);
    if (want === 0) return [];
    const consumer = await this.js.consumers.get(this.names.streams.dlq, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.All,
    });
    const out: DeadLetter[] = [];
    try {
      const messages = await consumer.fetch({ max_messages: want, expires: 5_000 });
      for await (const m of messages) {
        out.push(fromBinary(DeadLetterSchema, m.data));
        if (out.length >= want) break;
      }
    } finally {
      // As a goal-event feed's: the server would keep the ordered consumer 5 min.
      await consumer.delete().catch(() => false);
    }
    return out;
  }

  async deadLetterCounts(): Promise<Map<string, number>> {
    this.#open();
    const info = await this.jsm.streams.info(this.names.streams.dlq, {
      subjects_filter: this.names.dlqWildcard,
    });
    const head = this.names.dlqSubject("");
    const out = new Map<string, number>();
    for (const [subject, count] of Object.entries(info.state.subjects ?? {})) {
      out.set(subject.slice(head.length), count);
    }
    return out;
  }

  async stats(): Promise<QueueStats[]> {
    this.#open();
    const out: QueueStats[] = [];
    for await (const ci of this.jsm.consumers.list(this.names.streams.jobs)) {
      const capability = this.names.capabilityOf(ci.config.filter_subject ?? "");
      if (capability === undefined) continue;
      out.push({
        capability,
        depth: ci.num_pending + ci.num_ack_pending,
        lag: ci.num_pending,
        ackPending: ci.num_ack_pending,
        redelivered: ci.num_redelivered,
      });
    }
    return out;
  }

  async close(options?: StopOptions): Promise<void> {
    if (this.#closed) return;
    await Promise.all([...this.#subscriptions].map((s) => s.stop(options)));
    await Promise.all([...this.#feeds].map((f) => f.stop()));
    await Promise.all([...this.#handBacks]);
    this.#closed = true;
    this.#acks.close(new MeshError(Code.Unavailable, "job bus closed before the PubAck came"));
    for (const s of this.#natsSubs) s.unsubscribe();
    // Naks and acks are fire-and-forget publishes: flush them before leaving.
    if (this.#owned) await this.nc.drain().catch(() => undefined);
    else await this.nc.flush().catch(() => undefined);
  }
}

interface MaxDeliveriesAdvisory {
  stream: string;
  consumer: string;
  stream_seq: number;
  deliveries: number;
}

class JetStreamDelivery<T> implements Delivery<T> {
  readonly #bus: JetStreamBus;
  readonly #msg: JsMsg;
  /** A step job: its hand-backs are recorded. */
  readonly #job: boolean;
  readonly data: T;
  readonly maxDeliver: number;
  readonly ackWaitMs: number;
  #settled = false;

  constructor(bus: JetStreamBus, msg: JsMsg, data: T, job: boolean, ackWaitMs: number) {
    this.#bus = bus;
    this.#msg = msg;
    this.#job = job;
    this.data = data;
    this.maxDeliver = bus.options.maxDeliver;
    this.ackWaitMs = ackWaitMs;
  }

  get subject(): string {
    return this.#msg.subject;
  }
  get msgId(): string | undefined {
    return this.#msg.headers?.get("Nats-Msg-Id") || undefined;
  }
  get deliveryCount(): number {
    return this.#msg.info.deliveryCount;
  }
  get streamSequence(): number {
    return this.#msg.seq;
  }
  get traceparent(): string | undefined {
    return this.#msg.headers?.get("traceparent") || undefined;
  }
  get settled(): boolean {
    return this.#settled;
  }

  ack(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#msg.ack();
  }
  async previousDelivery(): Promise<PreviousDelivery> {
    const n = this.deliveryCount;
    if (n <= 1) return "none";
    if (!this.#job) return "lost";
    const last = await this.#bus.lastHandBack(this.#msg.subject, this.#msg.seq);
    return last === n - 1 ? "handed-back" : "lost";
  }
  nak(delayMs?: number): void {
    if (this.#settled) return;
    this.#settled = true;
    const nak = () => this.#msg.nak(delayMs && delayMs > 0 ? delayMs : undefined);
    if (!this.#job) {
      nak();
      return;
    }
    // The record is stored before the nak, so the redelivery finds it.
    const m = this.#msg;
    void this.#bus.recordHandBack(m.subject, m.seq, this.deliveryCount).finally(nak);
  }
  working(): void {
    if (!this.#settled) this.#msg.working();
  }
  term(): void {
    if (this.#settled) return;
    this.#settled = true;
    // 2.9 ignores the reason form of term, so none is sent.
    this.#msg.term();
  }
  async deadLetter(reason: string): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    const m = this.#msg;
    await this.#bus.writeDeadLetter(
      m.info.stream,
      m.seq,
      m.subject,
      m.data,
      m.info.deliveryCount,
      reason,
    );
    m.ack();
  }
}

class JetStreamSubscription<T extends Message> implements Subscription {
  readonly #bus: JetStreamBus;
  readonly #schema: GenMessage<T>;
  /** Marks each result's arrival for the stage trace (`lib/telemetry/stage-trace.ts`). */
  traceResults = false;
  readonly #job: boolean;
  /** The consumer's ack wait as the server has it (another process may have set it). */
  #ackWaitMs: number;
  readonly #pool: HandlerPool<T>;
  /**
   * Received while every handler slot was busy, oldest first, with when each was
   * last kept alive: nats.js pulls ahead of the handlers, and a message left
   * waiting past the ack wait would be redelivered and then run twice.
   */
  readonly #waiting: { m: JsMsg; aliveAt: number }[] = [];
  #keepAlive: NodeJS.Timeout | undefined;
  #messages!: ConsumerMessages;
  closed!: Promise<void>;
  #stopping = false;
  #stopped: Promise<StopResult> | undefined;

  constructor(
    bus: JetStreamBus,
    schema: GenMessage<T>,
    options: ConsumeOptions<T>,
    concurrency: number,
    job: boolean,
  ) {
    this.#bus = bus;
    this.#schema = schema;
    this.#job = job;
    this.#ackWaitMs = bus.options.ackWaitMs;
    this.#pool = new HandlerPool(
      options.handler,
      concurrency,
      options.backoff ?? defaultBackoff,
      bus.log,
      () => this.#next(),
    );
  }

  async start(consumer: Consumer, prefetch: number): Promise<void> {
    const ackWait = (await consumer.info(true).catch(() => undefined))?.config.ack_wait;
    if (ackWait) this.#ackWaitMs = Math.min(this.#ackWaitMs, Math.floor(ackWait / 1e6));
    // A callback, not the iterator: a handler starts in the same tick its message
    // is parsed, so a batch's replies and acks are written together.
    this.#messages = await consumer.consume({
      max_messages: prefetch,
      expires: pullExpiresMs,
      callback: (m) => this.#receive(m),
    });
    this.closed = this.#messages.closed().then((err) => {
      if (err && !this.#stopping) this.#bus.log.error({ err }, "consumer stopped");
    });
    this.#keepAlive = setInterval(
      () => this.#keepWaitingAlive(),
      Math.max(50, Math.min(1_000, this.#ackWaitMs / 6)),
    );
    this.#keepAlive.unref();
  }

  #keepWaitingAlive(): void {
    const now = Date.now();
    const due = now - this.#ackWaitMs / 3;
    for (const w of this.#waiting) {
      if (w.aliveAt > due) continue;
      w.aliveAt = now;
      w.m.working();
    }
  }

  get inFlight(): number {
    return this.#pool.inFlight;
  }

  /** Gives back a message no handler started. */
  #handBack(m: JsMsg): void {
    new JetStreamDelivery<T>(
      this.#bus,
      m,
      undefined as unknown as T,
      this.#job,
      this.#ackWaitMs,
    ).nak();
  }

  #receive(m: JsMsg): void {
    // A result's subject ends with its goal id: when it reached this process (bench/goal-stages.ts).
    if (this.traceResults) mark(m.subject.slice(m.subject.lastIndexOf(".") + 1), "x.resultRecv");
    if (this.#stopping) this.#handBack(m);
    else if (this.#pool.free > 0 && this.#waiting.length === 0) this.#run(m);
    else this.#waiting.push({ m, aliveAt: Date.now() });
  }

  /** A handler slot came free. */
  #next(): void {
    const w = this.#waiting.shift();
    if (w) this.#run(w.m);
  }

  #run(m: JsMsg): void {
    let data: T;
    try {
      data = fromBinary(this.#schema, m.data);
    } catch (err) {
      this.#bus.log.error({ err, subject: m.subject }, "undecodable message");
      const d = new JetStreamDelivery<T>(
        this.#bus,
        m,
        undefined as unknown as T,
        this.#job,
        this.#ackWaitMs,
      );
      void d.deadLetter("undecodable payload").catch(() => m.term());
      this.#next();
      return;
    }
    this.#pool.run(new JetStreamDelivery(this.#bus, m, data, this.#job, this.#ackWaitMs));
  }

  stop(options: StopOptions = {}): Promise<StopResult> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#messages.stop();
      clearInterval(this.#keepAlive);
      for (const w of this.#waiting.splice(0)) this.#handBack(w.m);
      const result = await this.#pool.drain(options.graceMs ?? 30_000);
      await this.closed;
      return result;
    })();
    return this.#stopped;
  }
}

function disconnected(): MeshError {
  return new MeshError(Code.Unavailable, "NATS is disconnected (reconnecting): nothing published");
}

function openSignal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
