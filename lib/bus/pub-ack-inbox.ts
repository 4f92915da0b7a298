/**
 * JetStream publishes that wait for their PubAck on one shared inbox
 * subscription: a publish is a single PUB with the reply subject `<inbox>.<n>`,
 * and the stream's answer is matched by `n`. It is what
 * `JetStreamClient.publish` does, without that path's costs on every message
 * (a request object, a timer and an `Error` built per reply); timeouts are
 * found by one sweep, and `failAll` ends every wait at once when the
 * connection drops — the outcome is then unknown, and a retry with the same
 * `Nats-Msg-Id` is safe because the stream drops duplicates.
 *
 * @example
 * const acks = new PubAckInbox(nc);
 * const { seq, duplicate } = await acks.publish("agentmesh.jobs.x", data, hdrs, 5_000);
 */
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import { Code, MeshError } from "../errors/mesh-error.js";

interface Waiting {
  resolve(ack: { seq: number; duplicate: boolean }): void;
  reject(err: Error): void;
  subject: string;
  deadline: number;
}

interface PubAckReply {
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; description?: string };
}

export class PubAckInbox {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #sub: Subscription;
  readonly #waiting = new Map<number, Waiting>();
  #next = 0;
  #sweep: NodeJS.Timeout | undefined;

  /** `inboxPrefix`: the connection's, where a NATS with per-identity permissions lets it subscribe. */
  constructor(nc: NatsConnection, inboxPrefix?: string) {
    this.#nc = nc;
    this.#prefix = `${createInbox(inboxPrefix)}.`;
    this.#sub = nc.subscribe(`${this.#prefix}*`, {
      callback: (err, msg) => {
        if (!err) this.#reply(msg);
      },
    });
  }

  /** Waits in flight. */
  get size(): number {
    return this.#waiting.size;
  }

  /** Publishes and resolves with the stream's PubAck; rejects with a MeshError. */
  publish(
    subject: string,
    data: Uint8Array,
    headers: MsgHdrs,
    timeoutMs: number,
  ): Promise<{ seq: number; duplicate: boolean }> {
    const id = ++this.#next;
    return new Promise((resolve, reject) => {
      try {
        this.#nc.publish(subject, data, { reply: this.#prefix + id, headers });
      } catch (err) {
        reject(MeshError.from(err, Code.Unavailable)); // e.g. the connection is closed
        return;
      }
      // The PubAck cannot be parsed before this synchronous code ends.
      this.#waiting.set(id, { resolve, reject, subject, deadline: Date.now() + timeoutMs });
      this.#sweep ??= setInterval(() => this.#expire(), Math.min(250, timeoutMs / 4));
      this.#sweep.unref();
    });
  }

  /** Rejects every wait with `err` (the connection dropped or closed). */
  failAll(err: Error): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of waiting) w.reject(err);
  }

  close(err: Error): void {
    this.#sub.unsubscribe();
    clearInterval(this.#sweep);
    this.failAll(err);
  }

  #reply(msg: Msg): void {
    const id = Number(msg.subject.slice(this.#prefix.length));
    const w = this.#waiting.get(id);
    if (!w) return; // timed out or failed already
    this.#waiting.delete(id);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      w.reject(new MeshError(Code.Unavailable, `no JetStream stream stores ${w.subject}`));
      return;
    }
    let pa: PubAckReply;
    try {
      pa = msg.json<PubAckReply>();
    } catch (err) {
      w.reject(new MeshError(Code.Internal, `bad PubAck for ${w.subject}`, { cause: err }));
      return;
    }
    if (pa.error || typeof pa.seq !== "number") {
      const why = pa.error?.description ?? "no sequence in PubAck";
      w.reject(new MeshError(Code.Unavailable, `JetStream refused ${w.subject}: ${why}`));
      return;
    }
    w.resolve({ seq: pa.seq, duplicate: pa.duplicate === true });
  }

  #expire(): void {
    const now = Date.now();
    // A full scan: waits may have different timeouts, and only the in-flight few are here.
    for (const [id, w] of this.#waiting) {
      if (w.deadline > now) continue;
      this.#waiting.delete(id);
      w.reject(
        new MeshError(Code.DeadlineExceeded, `no PubAck for ${w.subject} within the timeout`),
      );
    }
    if (this.#waiting.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }
}
