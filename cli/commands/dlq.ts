/**
 * `agentmesh dlq ls|show|replay`: the dead letters of every queue, straight
 * from JetStream. Each dead letter is one message of the DLQ stream on
 * `<prefix>.dlq.<name>` (`<name>` is the capability of a job, `_outcomes`,
 * `_training` or `_results`), addressed here by its sequence in that stream.
 * Replay publishes the original payload back on its original subject (the
 * stream deduplicates a replay that is repeated within its window) and then
 * removes the dead letter.
 *
 * @example
 * agentmesh dlq ls --name text.summarize
 * agentmesh dlq show 42
 * agentmesh dlq replay --all --name _outcomes
 */
import { type DescMessage, fromBinary, toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type DeadLetter,
  DeadLetterSchema,
  OutcomeSchema,
  StepJobSchema,
  StepResultSchema,
  TrainingJobSchema,
} from "../../gen/agentmesh/v1/jobs_pb.js";
import { type BusNames, busNames } from "../../lib/bus/bus-names.js";
import { busOptionsFromEnv, connectBus } from "../../lib/bus/index.js";
import type { JobBus } from "../../lib/bus/job-bus.js";
import { isTlsUrl } from "../../lib/bus/nats-tls.js";
import { loadConfig } from "../../lib/config/config.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { createLogger } from "../../lib/log/logger.js";
import { certPaths } from "../../lib/tls/dev-ca.js";
import { watchCertificates } from "../../lib/tls/index.js";
import { type Command, UsageError } from "../command.js";

const usage = `agentmesh dlq <ls|show|replay> [options]

  ls [--name N] [--limit L]        dead letters, oldest first, one JSON line each
                                   (seq, name, subject, reason, deliveries, time)
  show SEQ                         one dead letter with its payload decoded (JSON)
  replay SEQ... | --all [--name N] publish each payload back on its original subject,
                                   then remove the dead letter

--name is what follows <prefix>.dlq.: a capability (text.summarize), _outcomes,
_training or _results. The bus is NATS_URL with AGENTMESH_BUS_PREFIX; on a tls://
NATS the CLI connects with the certificate of --identity (default cli), whose NATS
permissions must allow reading the DLQ stream and publishing the replayed subjects.`;

interface Options {
  name?: string;
  limit: number;
  all: boolean;
  identity: string;
  seqs: number[];
}

/** `agentmesh dlq`: inspect and replay dead letters. */
export const dlq: Command = {
  name: "dlq",
  summary: "list, show and replay dead-lettered messages",
  usage,
  async run(args) {
    const [action, ...rest] = args;
    if (action !== "ls" && action !== "show" && action !== "replay") {
      throw new UsageError(action ? `unknown action ${JSON.stringify(action)}` : "missing action");
    }
    const o = parseOptions(rest);
    if (action === "show" && o.seqs.length !== 1) throw new UsageError("show takes one SEQ");
    if (action === "replay" && o.seqs.length === 0 && !o.all) {
      throw new UsageError("replay takes SEQ... or --all");
    }
    const bus = await openBus(o.identity);
    try {
      const letters = new DeadLetters(natsOf(bus), busNames(bus.options.prefix));
      if (action === "ls") {
        for (const l of await letters.list(o.name, o.limit))
          console.log(JSON.stringify(summary(l)));
      } else if (action === "show") {
        console.log(JSON.stringify(await letters.show(o.seqs[0]!), null, 2));
      } else {
        const seqs = o.all ? (await letters.list(o.name, o.limit)).map((l) => l.seq) : o.seqs;
        for (const seq of seqs) console.log(JSON.stringify(await letters.replay(seq)));
      }
      return 0;
    } finally {
      await bus.close({ graceMs: 0 });
    }
  },
};

/** One stored dead letter. */
export interface StoredLetter {
  seq: number;
  /** What follows `<prefix>.dlq.`. */
  name: string;
  letter: DeadLetter;
}

/** The DLQ stream of one bus prefix. */
export class DeadLetters {
  readonly #nc: NatsConnection;
  readonly #names: BusNames;

  constructor(nc: NatsConnection, names: BusNames) {
    this.#nc = nc;
    this.#names = names;
  }

  get #stream(): string {
    return this.#names.streams.dlq;
  }

  /** Up to `limit` dead letters (of `name`, else all), oldest first. */
  async list(name: string | undefined, limit: number): Promise<StoredLetter[]> {
    const filter = name === undefined ? this.#names.dlqWildcard : this.#names.dlqSubject(name);
    const jsm = await jetstreamManager(this.#nc);
    const info = await jsm.streams.info(this.#stream, { subjects_filter: filter });
    const total = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
    const want = Math.min(limit, total);
    if (want === 0) return [];
    const consumer = await jetstream(this.#nc).consumers.get(this.#stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.All,
    });
    const out: StoredLetter[] = [];
    for await (const m of await consumer.fetch({ max_messages: want, expires: 5_000 })) {
      out.push(this.#stored(m.seq, m.subject, m.data));
      if (out.length >= want) break;
    }
    return out;
  }

  /** The dead letter at `seq`, with its payload decoded where the subject says how. */
  async show(seq: number) {
    const { letter, name } = await this.#get(seq);
    return { ...summary({ seq, name, letter }), payload: this.#decode(letter) };
  }

  /** Publishes the payload back on its subject, then removes the dead letter. */
  async replay(seq: number) {
    const { letter, name } = await this.#get(seq);
    const js = jetstream(this.#nc);
    // Deduplicated by the stream: a replay repeated (say after a crash before the delete) is stored once.
    const ack = await js.publish(letter.subject, letter.payload, {
      msgID: `replay:${this.#stream}:${seq}`,
    });
    const jsm = await jetstreamManager(this.#nc);
    await jsm.streams.deleteMessage(this.#stream, seq, false);
    return { seq, name, subject: letter.subject, replayed: !ack.duplicate, streamSeq: ack.seq };
  }

  async #get(seq: number): Promise<StoredLetter> {
    const jsm = await jetstreamManager(this.#nc);
    const m = await jsm.streams.getMessage(this.#stream, { seq }).catch(() => null);
    if (!m) throw new MeshError(Code.NotFound, `no dead letter with sequence ${seq}`);
    return this.#stored(seq, m.subject, m.data);
  }

  #stored(seq: number, subject: string, data: Uint8Array): StoredLetter {
    const prefix = this.#names.dlqSubject("");
    return { seq, name: subject.slice(prefix.length), letter: fromBinary(DeadLetterSchema, data) };
  }

  /** The payload as JSON when its subject names its type, else base64. */
  #decode(letter: DeadLetter): unknown {
    const n = this.#names;
    let schema: DescMessage | undefined;
    if (n.capabilityOf(letter.subject) !== undefined) schema = StepJobSchema;
    else if (letter.subject === n.outcomesSubject) schema = OutcomeSchema;
    else if (letter.subject === n.trainingSubject) schema = TrainingJobSchema;
    else if (letter.subject.startsWith(n.resultsWildcard.slice(0, -1))) schema = StepResultSchema;
    if (schema) {
      try {
        return toJson(schema, fromBinary(schema, letter.payload));
      } catch {
        // Undecodable: that may be why it is here.
      }
    }
    return { base64: Buffer.from(letter.payload).toString("base64") };
  }
}

function summary({ seq, name, letter }: StoredLetter) {
  return {
    seq,
    name,
    subject: letter.subject,
    reason: letter.reason,
    deliveries: letter.deliveries,
    time: letter.time ? new Date(timestampMs(letter.time)).toISOString() : undefined,
    originalSeq: Number(letter.streamSequence),
  };
}

async function openBus(identity: string): Promise<JobBus> {
  const config = loadConfig();
  const certs = isTlsUrl(config.natsUrl)
    ? await watchCertificates({ dir: certPaths(config.certDir, identity).dir, name: identity })
    : undefined;
  return connectBus({
    ...busOptionsFromEnv(),
    natsUrl: config.natsUrl,
    explicit: true,
    name: `agentmesh-dlq-${identity}`,
    identity: { name: identity, ...(certs ? { certs } : {}) },
    // An inspection tool moves nothing by itself.
    jetstream: { deadLetterMover: false },
    log: createLogger({ name: "dlq", level: process.env.LOG_LEVEL ?? "error" }),
  });
}

/** The NATS connection under a JetStream bus (the DLQ stream is read directly). */
function natsOf(bus: JobBus): NatsConnection {
  const nc = (bus as { nc?: NatsConnection }).nc;
  if (bus.kind !== "jetstream" || nc === undefined) {
    throw new MeshError(Code.FailedPrecondition, "dead letters live in NATS JetStream");
  }
  return nc;
}

function parseOptions(args: string[]): Options {
  const o: Options = { limit: 1000, all: false, identity: "cli", seqs: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = args[i + 1];
    if (a === "--all") o.all = true;
    else if ((a === "--name" || a === "--limit" || a === "--identity") && value !== undefined) {
      if (a === "--name") o.name = value;
      else if (a === "--identity") o.identity = value;
      else o.limit = positive(value, "--limit");
      i++;
    } else if (/^\d+$/.test(a)) o.seqs.push(positive(a, "SEQ"));
    else throw new UsageError(`unexpected argument ${JSON.stringify(a)}`);
  }
  return o;
}

function positive(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${what} must be a positive integer`);
  return n;
}
