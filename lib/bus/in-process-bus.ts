/**
 * The in-process job bus: the JetStream delivery contract (explicit ack, nak
 * with delay, redelivery after the ack wait, max deliveries → dead letter,
 * message-id dedup) inside one Node process. The embedded mode uses it when no
 * NATS answers; messages do not survive the process.
 *
 * Messages are stored encoded, as on the wire, so a publisher mutating its
 * object afterwards never changes what a consumer sees.
 *
 * @example
 * const bus = createInProcessBus({ ackWaitMs: 5_000 });
 * await bus.consumeJobs("util.echo", { handler: (d) => d.ack() });
 */
import { create, fromBinary, type Message, toBinary } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
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
import { Code, MeshError } from "../errors/mesh-error.js";
import { createLogger, type Logger } from "../log/logger.js";
import { type BusNames, busNames, checkCapability, versionToken } from "./bus-names.js";
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
import { eventMsgId, jobMsgId, outcomeMsgId, resultMsgId, trainingMsgId } from "./message-ids.js";
import { currentTraceparent } from "./trace-context.js";

export interface InProcessBusOptions extends BusOptions {
  log?: Logger;
}

export function createInProcessBus(options: InProcessBusOptions = {}): JobBus {
  return new InProcessBus(options);
}

/** Largest message the in-process bus takes (NATS's default `max_payload`). */
const inProcessMaxPayload = 1024 * 1024;

interface Stored {
  seq: number;
  subject: string;
  data: Uint8Array;
  msgId: string | undefined;
  traceparent: string | undefined;
  deliveries: number;
  /** The delivery currently allowed to settle it; undefined while waiting. */
  current: InProcessDelivery<never> | undefined;
  /** The delivery number last handed back with `nak` (0: none). */
  handedBack: number;
  timer: NodeJS.Timeout | undefined;
}

/** Message-id dedup for one stream within the duplicate window. */
class Dedup {
  readonly #seen = new Map<string, { seq: number; expires: number }>();
  constructor(readonly windowMs: number) {}
  check(msgId: string | undefined): number | undefined {
    if (!msgId) return undefined;
    const now = Date.now();
    // Map iteration is insertion order, so expired entries are at the front.
    for (const [id, e] of this.#seen) {
      if (e.expires > now) break;
      this.#seen.delete(id);
    }
    return this.#seen.get(msgId)?.seq;
  }
  remember(msgId: string | undefined, seq: number): void {
    if (msgId) this.#seen.set(msgId, { seq, expires: Date.now() + this.windowMs });
  }
}

class InProcessBus implements JobBus {
  readonly kind = "in-process" as const;
  readonly options: ResolvedBusOptions;
  readonly names: BusNames;
  readonly log: Logger;
  #seq = 0;
  #closed = false;
  readonly #jobQueues = new Map<string, WorkQueue<StepJob>>();
  /** One agent version's queue of a capability, by `<capability> <version>`; not in `stats()`. */
  readonly #pinnedQueues = new Map<string, WorkQueue<StepJob>>();
  readonly #results: WorkQueue<StepResult>;
  readonly #outcomes: WorkQueue<Outcome>;
  readonly #training: WorkQueue<TrainingJob>;
  readonly #dedup: Record<"jobs" | "results" | "events" | "learning" | "dlq", Dedup>;
  readonly #events = new Map<string, Array<{ data: Uint8Array; time: number }>>();
  readonly #feeds = new Map<string, Set<FeedQueue>>();
  readonly #deadLetters: Array<{ subject: string; data: Uint8Array; time: number }> = [];
  readonly #cancelListeners = new Set<{ goalId?: string; handler: (s: CancelSignal) => void }>();
  readonly subscriptions = new Set<InProcessSubscription<never>>();

  constructor(options: InProcessBusOptions) {
    this.options = resolveBusOptions(options);
    this.names = busNames(this.options.prefix);
    this.log = options.log ?? createLogger({ name: "bus" });
    const w = this.options.duplicateWindowMs;
    this.#dedup = {
      jobs: new Dedup(w),
      results: new Dedup(w),
      events: new Dedup(w),
      learning: new Dedup(w),
      dlq: new Dedup(w),
    };
    this.#results = new WorkQueue(this, "_results", StepResultSchema);
    this.#outcomes = new WorkQueue(this, "_outcomes", OutcomeSchema);
    this.#training = new WorkQueue(this, "_training", TrainingJobSchema);
  }

  nextSeq(): number {
    return ++this.#seq;
  }

  #open(): void {
    if (this.#closed) throw new MeshError(Code.FailedPrecondition, "job bus is closed");
  }

  /** Always available while open: there is no connection to lose. */
  checkAvailable(): void {
    this.#open();
  }

  #pinnedQueue(capability: string, version: string): WorkQueue<StepJob> {
    // Named by its capability: its dead letters go where the capability's do.
    const key = `${capability} ${versionToken(version)}`;
    let q = this.#pinnedQueues.get(key);
    if (!q) {
      q = new WorkQueue(this, capability, StepJobSchema);
      this.#pinnedQueues.set(key, q);
    }
    return q;
  }

  #jobQueue(capability: string): WorkQueue<StepJob> {
    let q = this.#jobQueues.get(capability);
    if (!q) {
      q = new WorkQueue(this, capability, StepJobSchema);
      this.#jobQueues.set(capability, q);
    }
    return q;
  }

  #enqueue<T extends Message>(
    queue: WorkQueue<T>,
    dedup: Dedup,
    subject: string,
    schema: GenMessage<T>,
    message: T,
    msgId: string,
    options: PublishOptions | undefined,
  ): PublishAck {
    this.#open();
    const data = toBinary(schema, message);
    // NATS's default max payload, so a result too big for JetStream is too big here too.
    if (data.length > inProcessMaxPayload)
      throw payloadTooLarge(subject, data.length, inProcessMaxPayload);
    const dup = dedup.check(msgId);
    if (dup !== undefined) return { seq: dup, duplicate: true };
    const seq = this.nextSeq();
    dedup.remember(msgId, seq);
    queue.enqueue({
      seq,
      subject,
      data,
      msgId,
      traceparent: options?.traceparent ?? currentTraceparent(),
      deliveries: 0,
      current: undefined,
      handedBack: 0,
      timer: undefined,
    });
    return { seq, duplicate: false };
  }

  async publishJob(job: StepJob, options?: PublishOptions): Promise<PublishAck> {
    const subject = job.agentVersion
      ? this.names.pinnedJobSubject(job.capability, job.agentVersion)
      : this.names.jobSubject(job.capability);
    const q = job.agentVersion
      ? this.#pinnedQueue(job.capability, job.agentVersion)
      : this.#jobQueue(job.capability);
    return this.#enqueue(q, this.#dedup.jobs, subject, StepJobSchema, job, jobMsgId(job), options);
  }

  async consumeJobs(capability: string, options: JobConsumeOptions): Promise<Subscription> {
    this.#open();
    checkCapability(capability);
    const q = options.agentVersion
      ? this.#pinnedQueue(capability, options.agentVersion)
      : this.#jobQueue(capability);
    return q.subscribe(options);
  }

  async ensureCapability(capability: string): Promise<void> {
    this.#jobQueue(checkCapability(capability));
  }

  async publishResult(result: StepResult, options?: PublishOptions): Promise<PublishAck> {
    const subject = this.names.resultSubject(result.goalId);
    const id = resultMsgId(result);
    return this.#enqueue(
      this.#results,
      this.#dedup.results,
      subject,
      StepResultSchema,
      result,
      id,
      options,
    );
  }

  async consumeResults(options: ConsumeOptions<StepResult>): Promise<Subscription> {
    this.#open();
    return this.#results.subscribe(options);
  }

  async publishGoalEvent(event: GoalEvent, options?: PublishOptions): Promise<PublishAck> {
    this.#open();
    const subject = this.names.eventSubject(event.tenantId, event.goalId);
    void options;
    const id = eventMsgId(event);
    const dup = this.#dedup.events.check(id);
    if (dup !== undefined) return { seq: dup, duplicate: true };
    const seq = this.nextSeq();
    this.#dedup.events.remember(id, seq);
    const data = toBinary(GoalEventSchema, event);
    const now = Date.now();
    let history = this.#events.get(subject);
    if (!history) {
      history = [];
      this.#events.set(subject, history);
    }
    history.push({ data, time: now });
    const cutoff = now - this.options.eventsMaxAgeMs;
    while (history.length > 0 && history[0]!.time < cutoff) history.shift();
    for (const feed of this.#feeds.get(subject) ?? []) feed.push(data);
    return { seq, duplicate: false };
  }

  async subscribeGoalEvents(tenantId: string, goalId: string): Promise<GoalEventFeed> {
    this.#open();
    const subject = this.names.eventSubject(tenantId, goalId);
    const feed = new FeedQueue(() => this.#feeds.get(subject)?.delete(feed));
    const cutoff = Date.now() - this.options.eventsMaxAgeMs;
    for (const e of this.#events.get(subject) ?? []) if (e.time >= cutoff) feed.push(e.data);
    let set = this.#feeds.get(subject);
    if (!set) {
      set = new Set();
      this.#feeds.set(subject, set);
    }
    set.add(feed);
    return feed;
  }

  async purgeGoalEvents(tenantId: string): Promise<number> {
    this.#open();
    const tenantPrefix = this.names.tenantEventsWildcard(tenantId).slice(0, -1);
    let purged = 0;
    for (const [subject, history] of this.#events) {
      if (!subject.startsWith(tenantPrefix)) continue;
      purged += history.length;
      this.#events.delete(subject);
    }
    return purged;
  }

  async publishOutcome(outcome: Outcome, options?: PublishOptions): Promise<PublishAck> {
    const s = this.names.outcomesSubject;
    const id = outcomeMsgId(outcome);
    return this.#enqueue(
      this.#outcomes,
      this.#dedup.learning,
      s,
      OutcomeSchema,
      outcome,
      id,
      options,
    );
  }

  async consumeOutcomes(options: ConsumeOptions<Outcome>): Promise<Subscription> {
    this.#open();
    return this.#outcomes.subscribe(options);
  }

  async publishTraining(job: TrainingJob, options?: PublishOptions): Promise<PublishAck> {
    const s = this.names.trainingSubject;
    const id = trainingMsgId(job);
    return this.#enqueue(
      this.#training,
      this.#dedup.learning,
      s,
      TrainingJobSchema,
      job,
      id,
      options,
    );
  }

  async consumeTraining(options: ConsumeOptions<TrainingJob>): Promise<Subscription> {
    this.#open();
    return this.#training.subscribe(options);
  }

  async publishCancel(signal: CancelSignal): Promise<void> {
    this.#open();
    this.names.cancelSubject(signal.goalId); // validates the id like the NATS bus
    const copy = fromBinary(CancelSignalSchema, toBinary(CancelSignalSchema, signal));
    // Asynchronous like a network broadcast: never re-enter the publisher.
    queueMicrotask(() => {
      for (const l of this.#cancelListeners) {
        if (l.goalId !== undefined && l.goalId !== copy.goalId) continue;
        try {
          l.handler(copy);
        } catch (err) {
          this.log.warn({ err }, "cancel listener failed");
        }
      }
    });
  }

  subscribeCancel(handler: (signal: CancelSignal) => void, goalId?: string): Unsubscribe {
    if (goalId !== undefined) this.names.cancelSubject(goalId);
    const listener = goalId === undefined ? { handler } : { goalId, handler };
    this.#cancelListeners.add(listener);
    return { unsubscribe: () => this.#cancelListeners.delete(listener) };
  }

  /** Records a dead letter (deduplicated per stored message) and drops the message. */
  deadLetter(queueName: string, stored: Stored, reason: string): void {
    const id = `dlq.${stored.seq}`;
    if (this.#dedup.dlq.check(id) !== undefined) return;
    this.#dedup.dlq.remember(id, stored.seq);
    const subject = this.names.dlqSubject(queueName);
    const letter = create(DeadLetterSchema, {
      subject: stored.subject,
      reason,
      deliveries: stored.deliveries,
      payload: stored.data,
      time: timestampFromMs(Date.now()),
      streamSequence: BigInt(stored.seq),
    });
    this.#deadLetters.push({ subject, data: toBinary(DeadLetterSchema, letter), time: Date.now() });
    this.log.warn({ subject: stored.subject, reason, seq: stored.seq }, "message dead-lettered");
  }

  async listDeadLetters(options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    const limit = options.limit ?? 100;
    const want =
      options.capability === undefined
        ? undefined
        : this.names.dlqSubject(checkCapability(options.capability));
    const cutoff = Date.now() - this.options.deadLetterMaxAgeMs;
    const out: DeadLetter[] = [];
    for (const d of this.#deadLetters) {
      if (out.length >= limit) break;
      if (d.time < cutoff || (want !== undefined && d.subject !== want)) continue;
      out.push(fromBinary(DeadLetterSchema, d.data));
    }
    return out;
  }

  async deadLetterCounts(): Promise<Map<string, number>> {
    const cutoff = Date.now() - this.options.deadLetterMaxAgeMs;
    const head = `${this.names.dlqSubject("")}`;
    const out = new Map<string, number>();
    for (const d of this.#deadLetters) {
      if (d.time < cutoff) continue;
      const queue = d.subject.slice(head.length);
      out.set(queue, (out.get(queue) ?? 0) + 1);
    }
    return out;
  }

  async stats(): Promise<QueueStats[]> {
    return [...this.#jobQueues.entries()].map(([capability, q]) => ({ capability, ...q.stats() }));
  }

  async close(options?: StopOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop(options)));
    for (const q of [
      ...this.#jobQueues.values(),
      ...this.#pinnedQueues.values(),
      this.#results,
      this.#outcomes,
      this.#training,
    ]) {
      q.clearTimers();
    }
    for (const set of this.#feeds.values()) for (const f of set) void f.stop();
    this.#cancelListeners.clear();
  }
}

/** One durable consumer over one queue: delivers to subscribers with free slots. */
class WorkQueue<T extends Message> {
  readonly #bus: InProcessBus;
  readonly #schema: GenMessage<T>;
  readonly name: string;
  readonly #messages = new Map<number, Stored>();
  /** Messages ready for delivery, redeliveries first. */
  #ready: Stored[] = [];
  #ackPending = 0;
  readonly #subs: InProcessSubscription<T>[] = [];
  #rr = 0;
  #pumping = false;

  constructor(bus: InProcessBus, name: string, schema: GenMessage<T>) {
    this.#bus = bus;
    this.name = name;
    this.#schema = schema;
  }

  enqueue(stored: Stored): void {
    this.#messages.set(stored.seq, stored);
    this.#ready.push(stored);
    this.pump();
  }

  subscribe(options: ConsumeOptions<T>): Subscription {
    const sub = new InProcessSubscription<T>(this, options, this.#bus.log);
    this.#subs.push(sub);
    this.#bus.subscriptions.add(sub as unknown as InProcessSubscription<never>);
    // Deliver on a later tick so the caller holds the subscription first.
    setImmediate(() => this.pump());
    return sub;
  }

  unsubscribe(sub: InProcessSubscription<T>): void {
    const i = this.#subs.indexOf(sub);
    if (i >= 0) this.#subs.splice(i, 1);
    this.#bus.subscriptions.delete(sub as unknown as InProcessSubscription<never>);
  }

  /** Hands ready messages to subscribers with free slots, round robin, within max ack pending. */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      const max = this.#bus.options.maxAckPending;
      // Redeliveries are already counted as pending, so the limit only holds back new messages.
      while (this.#ready.length > 0 && (this.#ready[0]!.deliveries > 0 || this.#ackPending < max)) {
        const sub = this.#nextFreeSubscriber();
        if (!sub) break;
        const stored = this.#ready.shift()!;
        if (!this.#messages.has(stored.seq)) continue;
        this.#deliver(stored, sub);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #nextFreeSubscriber(): InProcessSubscription<T> | undefined {
    const n = this.#subs.length;
    for (let i = 0; i < n; i++) {
      const sub = this.#subs[(this.#rr + i) % n]!;
      if (sub.accepting && sub.pool.free > 0) {
        this.#rr = (this.#rr + i + 1) % n;
        return sub;
      }
    }
    return undefined;
  }

  #deliver(stored: Stored, sub: InProcessSubscription<T>): void {
    let data: T;
    try {
      data = fromBinary(this.#schema, stored.data);
    } catch (err) {
      this.#bus.log.error({ err, subject: stored.subject }, "undecodable message");
      this.#remove(stored);
      this.#bus.deadLetter(this.name, stored, "undecodable payload");
      return;
    }
    // Delivered and unsettled, waiting for redelivery included, as JetStream counts it.
    if (stored.deliveries++ === 0) this.#ackPending++;
    const delivery = new InProcessDelivery<T>(this, stored, data, this.#bus.options);
    stored.current = delivery as unknown as InProcessDelivery<never>;
    this.#armAckWait(stored);
    sub.pool.run(delivery);
  }

  #armAckWait(stored: Stored): void {
    clearTimeout(stored.timer);
    stored.timer = setTimeout(() => {
      stored.timer = undefined;
      if (stored.current) this.nak(stored, 0);
    }, this.#bus.options.ackWaitMs);
    stored.timer.unref?.();
  }

  working(stored: Stored): void {
    if (stored.current) this.#armAckWait(stored);
  }

  ack(stored: Stored): void {
    this.#remove(stored);
    this.pump();
  }

  nak(stored: Stored, delayMs: number): void {
    if (!this.#messages.has(stored.seq)) return;
    clearTimeout(stored.timer);
    stored.timer = undefined;
    stored.current = undefined;
    if (stored.deliveries >= this.#bus.options.maxDeliver) {
      this.#remove(stored);
      const n = this.#bus.options.maxDeliver;
      this.#bus.deadLetter(this.name, stored, `max deliveries (${n}) exceeded`);
      this.pump();
      return;
    }
    const ready = () => {
      stored.timer = undefined;
      if (!this.#messages.has(stored.seq)) return;
      this.#ready.unshift(stored);
      this.pump();
    };
    if (delayMs > 0) {
      stored.timer = setTimeout(ready, delayMs);
      stored.timer.unref?.();
    } else {
      ready();
    }
  }

  deadLetter(stored: Stored, reason: string): void {
    if (!this.#messages.has(stored.seq)) return;
    this.#remove(stored);
    this.#bus.deadLetter(this.name, stored, reason);
    this.pump();
  }

  #remove(stored: Stored): void {
    if (!this.#messages.delete(stored.seq)) return;
    clearTimeout(stored.timer);
    stored.timer = undefined;
    stored.current = undefined;
    if (stored.deliveries > 0) this.#ackPending--;
  }

  stats(): Omit<QueueStats, "capability"> {
    let lag = 0;
    let redelivered = 0;
    for (const m of this.#messages.values()) {
      if (m.deliveries === 0) lag++;
      else if (m.deliveries > 1) redelivered++;
    }
    const ackPending = this.#messages.size - lag;
    return { depth: this.#messages.size, lag, ackPending, redelivered };
  }

  clearTimers(): void {
    for (const m of this.#messages.values()) clearTimeout(m.timer);
  }
}

class InProcessDelivery<T extends Message> implements Delivery<T> {
  readonly #queue: WorkQueue<T>;
  readonly #stored: Stored;
  readonly data: T;
  readonly deliveryCount: number;
  readonly maxDeliver: number;
  readonly ackWaitMs: number;
  #settled = false;

  constructor(queue: WorkQueue<T>, stored: Stored, data: T, options: ResolvedBusOptions) {
    this.#queue = queue;
    this.#stored = stored;
    this.data = data;
    this.deliveryCount = stored.deliveries;
    this.maxDeliver = options.maxDeliver;
    this.ackWaitMs = options.ackWaitMs;
  }

  get subject(): string {
    return this.#stored.subject;
  }
  get msgId(): string | undefined {
    return this.#stored.msgId;
  }
  get streamSequence(): number {
    return this.#stored.seq;
  }
  get traceparent(): string | undefined {
    return this.#stored.traceparent;
  }
  get settled(): boolean {
    return this.#settled;
  }

  /** Only the latest delivery of a message may hand it back; any delivery may finish it. */
  #isCurrent(): boolean {
    return (this.#stored.current as unknown) === this;
  }

  ack(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#queue.ack(this.#stored);
  }
  async previousDelivery(): Promise<PreviousDelivery> {
    if (this.deliveryCount <= 1) return "none";
    return this.#stored.handedBack === this.deliveryCount - 1 ? "handed-back" : "lost";
  }
  nak(delayMs = 0): void {
    if (this.#settled) return;
    this.#settled = true;
    if (!this.#isCurrent()) return;
    this.#stored.handedBack = this.deliveryCount;
    this.#queue.nak(this.#stored, delayMs);
  }
  working(): void {
    if (!this.#settled && this.#isCurrent()) this.#queue.working(this.#stored);
  }
  term(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#queue.ack(this.#stored);
  }
  async deadLetter(reason: string): Promise<void> {
    if (this.#settled) return;
    this.#settled = true;
    this.#queue.deadLetter(this.#stored, reason);
  }
}

class InProcessSubscription<T extends Message> implements Subscription {
  readonly pool: HandlerPool<T>;
  readonly #queue: WorkQueue<T>;
  accepting = true;
  #stopping: Promise<StopResult> | undefined;

  constructor(queue: WorkQueue<T>, options: ConsumeOptions<T>, log: Logger) {
    this.#queue = queue;
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    const backoff = options.backoff ?? defaultBackoff;
    // A finished handler frees a slot: pull the next message.
    const handler = options.handler;
    this.pool = new HandlerPool<T>(
      async (d) => {
        try {
          await handler(d);
        } finally {
          setImmediate(() => queue.pump());
        }
      },
      concurrency,
      backoff,
      log,
    );
  }

  get inFlight(): number {
    return this.pool.inFlight;
  }

  stop(options: StopOptions = {}): Promise<StopResult> {
    this.#stopping ??= (async () => {
      this.accepting = false;
      this.#queue.unsubscribe(this);
      const result = await this.pool.drain(options.graceMs ?? 30_000);
      this.#queue.pump();
      return result;
    })();
    return this.#stopping;
  }
}

/** An async queue of encoded goal events for one feed. */
class FeedQueue implements GoalEventFeed {
  #buffer: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #done = false;
  readonly #onStop: () => void;

  constructor(onStop: () => void) {
    this.#onStop = onStop;
  }

  push(data: Uint8Array): void {
    if (this.#done) return;
    this.#buffer.push(data);
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#done = true;
    this.#onStop();
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<GoalEvent> {
    while (true) {
      const next = this.#buffer.shift();
      if (next) {
        yield fromBinary(GoalEventSchema, next);
        continue;
      }
      if (this.#done) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
