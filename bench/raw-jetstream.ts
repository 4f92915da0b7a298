/**
 * The baseline of the bus-shaped benchmarks: a bare JetStream work-queue stream
 * with one durable explicit-ack consumer that acks every message at once — what
 * the mesh's job path is compared with, measured in the same run.
 */
import { randomBytes } from "node:crypto";
import {
  AckPolicy,
  type JetStreamClient,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { connectNats } from "../lib/bus/jetstream-bus.js";

export interface RawWorkQueue {
  js: JetStreamClient;
  /** The stream's one subject; publish jobs here. */
  subject: string;
  /** Messages consumed and acked so far. */
  acked(): number;
  /** Stops consuming, deletes the stream, closes the connection. */
  close(): Promise<void>;
}

/** Creates a private work-queue stream `BENCH_<label>_<random>` and starts acking it. */
export async function openRawWorkQueue(
  natsUrl: string,
  label: string,
  onAcked?: (m: JsMsg) => void,
): Promise<RawWorkQueue> {
  const nc = await connectNats(natsUrl, `bench-${label.toLowerCase()}-raw`);
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const stream = `BENCH_${label}_${randomBytes(4).toString("hex").toUpperCase()}`;
  const subject = `${stream.toLowerCase()}.jobs`;
  await jsm.streams.add({
    name: stream,
    subjects: [subject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await jsm.consumers.add(stream, {
    durable_name: "raw",
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    max_ack_pending: 1_000,
  });
  const consumer = await js.consumers.get(stream, "raw");
  let acked = 0;
  const messages = await consumer.consume({
    max_messages: 256,
    callback: (m) => {
      m.ack();
      acked++;
      onAcked?.(m);
    },
  });
  return {
    js,
    subject,
    acked: () => acked,
    async close() {
      await messages.close();
      await jsm.streams.delete(stream);
      await nc.close();
    },
  };
}
