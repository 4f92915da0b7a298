/**
 * `agentmesh dlq` against real NATS JetStream (a private prefix): dead
 * letters of a job queue and of learning's outcomes are listed, shown with
 * their payload decoded, and replayed onto their original subject, where a
 * consumer receives them again; a replayed letter is gone from the DLQ.
 */
import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { OutcomeSchema } from "../../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../../lib/bus/jetstream-bus.js";
import { stepJob } from "../../lib/bus/job-bus.contract.js";
import type { JobBus, Subscription } from "../../lib/bus/job-bus.js";
import { Code, MeshError } from "../../lib/errors/mesh-error.js";
import { needNats, runId } from "../../lib/testing/infra.js";
import { waitFor } from "../../lib/testing/wait-for.js";
import { UsageError } from "../command.js";
import { dlq } from "./dlq.js";

const nats = await needNats();

describe.skipIf(!nats)("agentmesh dlq", () => {
  const prefix = runId("dlq");
  const saved = { url: process.env.NATS_URL, prefix: process.env.AGENTMESH_BUS_PREFIX };
  const out = vi.spyOn(console, "log").mockImplementation(() => undefined);
  let bus: JobBus;
  const subs: Subscription[] = [];

  beforeAll(async () => {
    process.env.NATS_URL = nats!.url;
    process.env.AGENTMESH_BUS_PREFIX = prefix;
    bus = await createJetStreamBus({ servers: nats!.url, prefix });
  });
  afterAll(async () => {
    for (const s of subs) await s.stop({ graceMs: 0 });
    await bus?.close({ graceMs: 0 });
    const nc = await connectNats(nats!.url);
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(busNames(prefix).streams))
      await jsm.streams.delete(s).catch(() => false);
    await nc.close();
    process.env.NATS_URL = saved.url;
    process.env.AGENTMESH_BUS_PREFIX = saved.prefix;
    if (saved.url === undefined) delete process.env.NATS_URL;
    if (saved.prefix === undefined) delete process.env.AGENTMESH_BUS_PREFIX;
    out.mockRestore();
  });

  /** The JSON lines `agentmesh dlq <args>` printed. */
  const run = async (...args: string[]) => {
    out.mockClear();
    expect(await dlq.run(args)).toBe(0);
    return out.mock.calls.map((c) => JSON.parse(String(c[0])));
  };

  it("lists, shows and replays dead letters of a job queue and of outcomes", async () => {
    const job = stepJob("test.poison", { goalId: "g-dlq" });
    const poisoned = await bus.consumeJobs("test.poison", {
      handler: (d) => d.deadLetter("poison for the test"),
    });
    const outcomes = await bus.consumeOutcomes({ handler: (d) => d.deadLetter("bad outcome") });
    await bus.publishJob(job);
    await bus.publishOutcome(create(OutcomeSchema, { goalId: "g-outcome", strategy: "s" }));
    await waitFor("two dead letters", async () => (await run("ls")).length === 2, 15_000);
    await poisoned.stop({ graceMs: 0 });
    await outcomes.stop({ graceMs: 0 });

    const all = await run("ls");
    expect(all.map((l) => l.name).sort()).toEqual(["_outcomes", "test.poison"]);
    const [jobLetter] = await run("ls", "--name", "test.poison");
    expect(jobLetter).toMatchObject({
      name: "test.poison",
      subject: `${prefix}.jobs.test.poison`,
      reason: "poison for the test",
      deliveries: 1,
    });
    const [shown] = await run("show", String(jobLetter.seq));
    expect(shown.payload).toMatchObject({ attemptId: job.attemptId, goalId: "g-dlq" });

    // Replayed onto the job queue: a healthy consumer gets the same job again.
    const received: string[] = [];
    subs.push(
      await bus.consumeJobs("test.poison", {
        handler: (d) => void received.push(d.data.attemptId),
      }),
    );
    const [replayed] = await run("replay", String(jobLetter.seq));
    expect(replayed).toMatchObject({ seq: jobLetter.seq, replayed: true });
    await waitFor("the replayed job", () => received.length === 1, 10_000);
    expect(received).toEqual([job.attemptId]);
    expect((await run("ls")).map((l) => l.name)).toEqual(["_outcomes"]);
    const gone = await dlq.run(["replay", String(jobLetter.seq)]).catch((e: unknown) => e);
    expect(MeshError.from(gone).code).toBe(Code.NotFound);

    // Everything of a name at once.
    const got: string[] = [];
    subs.push(await bus.consumeOutcomes({ handler: (d) => void got.push(d.data.goalId) }));
    expect(await run("replay", "--all", "--name", "_outcomes")).toHaveLength(1);
    await waitFor("the replayed outcome", () => got.length === 1, 10_000);
    expect(got).toEqual(["g-outcome"]);
    expect(await run("ls")).toEqual([]);
  });

  it("refuses bad arguments with usage errors", async () => {
    await expect(dlq.run([])).rejects.toBeInstanceOf(UsageError);
    await expect(dlq.run(["replay"])).rejects.toBeInstanceOf(UsageError);
    await expect(dlq.run(["show", "1", "2"])).rejects.toBeInstanceOf(UsageError);
    await expect(dlq.run(["ls", "--limit", "0"])).rejects.toBeInstanceOf(UsageError);
  });
});
