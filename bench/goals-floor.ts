/**
 * The floor of a one-step goal, for `bench/goals`: the durable work a goal
 * cannot do without, written directly on `pg` and the NATS client, and nothing
 * else (no planning, policy, mTLS, learning, leases or retries).
 *
 *   bench ──request──▶ intake: INSERT the goal row, publish the job (JetStream), reply
 *   worker: consume the job, publish the result (PubAck), ack
 *   finisher: consume the result, UPDATE the row, publish one event (JetStream), ack
 *   bench ◀──event── (the events stream's subject, as the mesh's bench watches)
 *
 * Intake, worker and finisher each run in a process of their own
 * (`node --import tsx bench/goals-floor.ts <role> <config>`), so every hop is a
 * process boundary as in the mesh: two SQL statements, three JetStream
 * publishes and one request per goal.
 */
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import {
  type JetStreamClient,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connectNats } from "../lib/bus/jetstream-bus.js";
import { addWorkQueue } from "./raw-jetstream.js";

/** The slice of node-postgres the floor uses (pg ships no types; knex brings it in). */
interface PgPool {
  query(q: { text: string; values?: unknown[]; name?: string }): Promise<{ rowCount: number }>;
  end(): Promise<void>;
}
const pg = createRequire(import.meta.url)("pg") as {
  Pool: new (options: { connectionString: string; max: number }) => PgPool;
};

interface FloorConfig {
  databaseUrl: string;
  natsUrl: string;
  /** Qualified table name: `<schema>.goals`. */
  table: string;
  submitSubject: string;
  jobs: { stream: string; subject: string };
  results: { stream: string; subject: string };
  events: { stream: string; subject: string };
}

/** SQL statements the floor makes per goal: the insert and the update. */
export const floorStatementsPerGoal = 2;

/** The same pull window and pool size the mesh's processes use. */
const pullWindow = 256;
const poolSize = 10;

export interface Floor {
  /** Submits one goal and resolves when its event arrives. */
  oneGoal(): Promise<void>;
  processes: { name: string; pid: number }[];
  close(): Promise<void>;
}

export async function startFloor(databaseUrl: string, natsUrl: string): Promise<Floor> {
  const id = randomBytes(4).toString("hex");
  const base = `FLOOR_${id.toUpperCase()}`;
  const subjects = `floor_${id}`;
  const config: FloorConfig = {
    databaseUrl,
    natsUrl,
    table: `floor_${id}.goals`,
    submitSubject: `${subjects}.submit`,
    jobs: { stream: `${base}_JOBS`, subject: `${subjects}.jobs` },
    results: { stream: `${base}_RESULTS`, subject: `${subjects}.results` },
    events: { stream: `${base}_EVENTS`, subject: `${subjects}.events` },
  };
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  await db.query({ text: `create schema floor_${id}` });
  await db.query({
    text: `create table ${config.table} (
      id uuid primary key, tenant_id text not null, kind text not null, input jsonb not null,
      status text not null, output jsonb, created_at timestamptz not null default now(),
      updated_at timestamptz not null default now())`,
  });
  const nc = await connectNats(natsUrl, "bench-floor");
  const jsm = await jetstreamManager(nc);
  for (const s of [config.jobs, config.results]) await addWorkQueue(jsm, s, "floor");
  await jsm.streams.add({
    name: config.events.stream,
    subjects: [`${config.events.subject}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
  });

  const children = [] as { name: string; child: ReturnType<typeof spawn> }[];
  const close = async () => {
    for (const { child } of children) {
      child.kill("SIGTERM");
      if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
    }
    for (const s of [config.jobs, config.results, config.events]) {
      await jsm.streams.delete(s.stream).catch(() => undefined);
    }
    await nc.close();
    await db.query({ text: `drop schema floor_${id} cascade` });
    await db.end();
  };
  try {
    for (const role of ["intake", "worker", "finisher"] as const) {
      const child = spawn(
        process.execPath,
        [...process.execArgv, "--import", "tsx", fileURLToPath(import.meta.url), role],
        { stdio: ["pipe", "pipe", "inherit"], env: { ...process.env } },
      );
      children.push({ name: `floor-${role}`, child });
      child.stdin!.end(JSON.stringify(config));
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on("data", (c: Buffer) => {
          if (c.toString().includes("ready")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`floor ${role} exited with ${code}`)));
      });
    }
  } catch (err) {
    await close();
    throw err;
  }

  // Every goal's event; a goal whose event beats its reply waits in `early`.
  const early = new Set<string>();
  const waiters = new Map<string, () => void>();
  nc.subscribe(`${config.events.subject}.>`, {
    callback: (_err, m) => {
      const goalId = m.subject.slice(config.events.subject.length + 1);
      const w = waiters.get(goalId);
      if (w) {
        waiters.delete(goalId);
        w();
      } else early.add(goalId);
    },
  });
  await nc.flush();
  let n = 0;
  const encoder = new TextEncoder();
  return {
    processes: children.map(({ name, child }) => ({ name, pid: child.pid! })),
    close,
    async oneGoal() {
      const reply = await nc.request(
        config.submitSubject,
        encoder.encode(
          JSON.stringify({ tenantId: "t1", kind: "echo", input: { message: `m${n++}` } }),
        ),
        { timeout: 30_000 },
      );
      const goalId = reply.string();
      if (early.delete(goalId)) return;
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => {
          waiters.delete(goalId);
          reject(new Error(`floor goal ${goalId} not finished in 30 s`));
        }, 30_000);
        waiters.set(goalId, () => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}

/** Intake: the goal row, then the job; replies with the goal's id. */
function intake(config: FloorConfig, js: JetStreamClient, db: PgPool) {
  return (data: Uint8Array, respond: (id: string) => void, fail: (err: unknown) => void) => {
    const goal = JSON.parse(new TextDecoder().decode(data)) as {
      tenantId: string;
      kind: string;
      input: unknown;
    };
    const id = randomUUID();
    db.query({
      name: "floor_insert",
      text: `insert into ${config.table} (id, tenant_id, kind, input, status) values ($1, $2, $3, $4, 'running')`,
      values: [id, goal.tenantId, goal.kind, JSON.stringify(goal.input)],
    })
      .then(() =>
        js.publish(config.jobs.subject, JSON.stringify({ goalId: id, input: goal.input }), {
          msgID: id,
        }),
      )
      .then(() => respond(id), fail);
  };
}

async function runRole(role: string, config: FloorConfig) {
  const nc = await connectNats(config.natsUrl, `bench-floor-${role}`);
  const js = jetstream(nc);
  const db =
    role === "worker"
      ? undefined
      : new pg.Pool({ connectionString: config.databaseUrl, max: poolSize });
  let stop: () => Promise<void>;
  if (role === "intake") {
    const handle = intake(config, js, db!);
    const sub = nc.subscribe(config.submitSubject, {
      callback: (_err, m) =>
        handle(
          m.data,
          (id) => m.respond(id),
          (err) => console.error("floor intake:", err),
        ),
    });
    stop = async () => sub.unsubscribe();
  } else {
    const from = role === "worker" ? config.jobs : config.results;
    const consumer = await js.consumers.get(from.stream, "floor");
    const messages = await consumer.consume({
      max_messages: pullWindow,
      callback: (m) => {
        const job = m.json<{ goalId: string; input: unknown; output?: unknown }>();
        const done =
          role === "worker"
            ? // The echo skill: the output is the input.
              js.publish(config.results.subject, m.data, { msgID: `${job.goalId}.r` })
            : db!
                .query({
                  name: "floor_finish",
                  text: `update ${config.table} set status = 'succeeded', output = $2, updated_at = now() where id = $1 and status = 'running'`,
                  values: [job.goalId, JSON.stringify(job.input)],
                })
                .then(() =>
                  js.publish(`${config.events.subject}.${job.goalId}`, "succeeded", {
                    msgID: `${job.goalId}.f`,
                  }),
                );
        done.then(
          () => m.ack(),
          (err) => {
            console.error(`floor ${role}:`, err);
            m.nak();
          },
        );
      },
    });
    stop = () => messages.close().then(() => undefined);
  }
  process.once("SIGTERM", () => {
    void stop()
      .then(() => nc.drain())
      .then(() => db?.end())
      .finally(() => process.exit(0));
  });
  console.log("ready");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  await runRole(process.argv[2]!, JSON.parse(input) as FloorConfig);
}
