/**
 * The baselines of the bus-shaped benchmarks, in bare JetStream, measured in the
 * same run as the mesh: a work-queue stream with one durable explicit-ack
 * consumer that acks every message at once (`openRawWorkQueue`), and the same
 * job → worker process → result round trip the mesh's job path makes
 * (`openRawRoundTrip`; run as `node --import tsx bench/raw-jetstream.ts worker ...`
 * for its worker side).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import {
  AckPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { connectNats, type NatsConnectOptions } from "../lib/bus/jetstream-bus.js";
import { readCertificateSet } from "../lib/tls/cert-watcher.js";
import { spiffeServerCheck } from "../lib/tls/credentials.js";

/** Mutual TLS for a raw client: its certificate folder and the server's expected SPIFFE ID. */
export interface RawTls {
  certDir: string;
  serverId: string;
}

async function rawConnectOptions(tls: RawTls | undefined): Promise<NatsConnectOptions> {
  if (!tls) return {};
  const set = await readCertificateSet(tls.certDir);
  return {
    tls: {
      cert: set.cert.toString(),
      key: set.key.toString(),
      ca: set.ca.toString(),
      checkServerIdentity: spiffeServerCheck(tls.serverId),
    },
  };
}

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
  tls?: RawTls,
): Promise<RawWorkQueue> {
  const nc = await connectNats(
    natsUrl,
    `bench-${label.toLowerCase()}-raw`,
    2_000,
    await rawConnectOptions(tls),
  );
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

/** A work-queue stream on file storage with one durable explicit-ack consumer. */
export async function addWorkQueue(
  jsm: JetStreamManager,
  queue: { stream: string; subject: string },
  durable: string,
): Promise<void> {
  await jsm.streams.add({
    name: queue.stream,
    subjects: [queue.subject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
  await jsm.consumers.add(queue.stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    max_ack_pending: 1_000,
  });
}

export interface RawRoundTrip {
  js: JetStreamClient;
  /** Publish jobs here (with a `msgID`); the worker answers on the results stream. */
  jobSubject: string;
  /** Results consumed and acked so far. */
  results(): number;
  /** The worker process, to read its CPU time. */
  workerPid: number;
  /** Stops the worker, deletes the streams, closes the connection. */
  close(): Promise<void>;
}

/**
 * The bare-JetStream equivalent of a job through the mesh: a job stream and a
 * results stream (work queues), a worker in its own process that for each job
 * publishes a result, awaits its PubAck and only then acks the job (the agent
 * SDK's order), and this process consuming and acking the results.
 * `onResult` sees each result's `Nats-Msg-Id` (the job's id).
 */
export async function openRawRoundTrip(
  natsUrl: string,
  label: string,
  onResult?: (jobId: string) => void,
  tls?: RawTls,
): Promise<RawRoundTrip> {
  const nc = await connectNats(
    natsUrl,
    `bench-${label.toLowerCase()}-raw`,
    2_000,
    await rawConnectOptions(tls),
  );
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const base = `BENCH_${label}_${randomBytes(4).toString("hex").toUpperCase()}`;
  const jobs = { stream: `${base}_JOBS`, subject: `${base.toLowerCase()}.jobs` };
  const results = { stream: `${base}_RESULTS`, subject: `${base.toLowerCase()}.results` };
  for (const s of [jobs, results]) await addWorkQueue(jsm, s, "raw");
  const worker = spawn(
    process.execPath,
    [
      ...process.execArgv,
      "--import",
      "tsx",
      fileURLToPath(import.meta.url),
      "worker",
      natsUrl,
      jobs.stream,
      results.subject,
      ...(tls ? [tls.certDir, tls.serverId] : []),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((resolve, reject) => {
    worker.stdout!.on("data", (c: Buffer) => {
      if (c.toString().includes("ready")) resolve();
    });
    worker.once("exit", (code) => reject(new Error(`raw worker exited with ${code}`)));
  });
  let count = 0;
  const consumer = await js.consumers.get(results.stream, "raw");
  const messages = await consumer.consume({
    max_messages: 512,
    callback: (m) => {
      m.ack();
      count++;
      const id = m.headers?.get("Nats-Msg-Id");
      if (id) onResult?.(id.slice(0, -2));
    },
  });
  return {
    js,
    jobSubject: jobs.subject,
    results: () => count,
    workerPid: worker.pid!,
    async close() {
      worker.kill("SIGTERM");
      if (worker.exitCode === null) await once(worker, "exit");
      await messages.close();
      for (const s of [jobs, results]) await jsm.streams.delete(s.stream);
      await nc.close();
    },
  };
}

/** The worker process of `openRawRoundTrip`. */
async function rawWorker(
  natsUrl: string,
  jobStream: string,
  resultSubject: string,
  tls: RawTls | undefined,
) {
  const nc = await connectNats(natsUrl, "bench-raw-worker", 2_000, await rawConnectOptions(tls));
  const js = jetstream(nc);
  const consumer = await js.consumers.get(jobStream, "raw");
  // The same pull window as the bench's agent (`--concurrency 256`).
  const messages = await consumer.consume({
    max_messages: 256,
    callback: (m) => {
      const id = m.headers?.get("Nats-Msg-Id") ?? String(m.seq);
      js.publish(resultSubject, m.data, { msgID: `${id}.r` }).then(
        () => m.ack(),
        () => m.nak(),
      );
    },
  });
  process.once("SIGTERM", () => {
    void messages.close().then(() => nc.drain());
  });
  console.log("ready");
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "worker") {
  const [natsUrl, jobStream, resultSubject, certDir, serverId] = process.argv.slice(3) as [
    string,
    string,
    string,
    string | undefined,
    string | undefined,
  ];
  await rawWorker(
    natsUrl,
    jobStream,
    resultSubject,
    certDir && serverId ? { certDir, serverId } : undefined,
  );
}
