/**
 * Two agent processes (`agentmesh agent util`) share util.sleep jobs on real
 * JetStream; one is killed with SIGKILL mid-step. Its jobs come back after the
 * ack wait, the other agent finishes them, and every job reports SUCCEEDED
 * exactly once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import { type StepResult, StepResultStatus } from "../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import { stepJob, waitFor } from "../lib/bus/job-bus.contract.js";
import { needNats, runId } from "../lib/testing/infra.js";

const nats = await needNats();
const prefix = runId("tcrash");
const ackWaitMs = 1_500;
const children: ChildProcess[] = [];

/** Starts `agentmesh agent util` and resolves with its agent id once it consumes. */
async function startAgent(natsUrl: string): Promise<{ child: ChildProcess; agentId: string }> {
  const child = spawn(
    process.execPath,
    ["bin/agentmesh.js", "agent", "util", "--concurrency", "3", "--no-registry"],
    {
      env: {
        ...process.env,
        NATS_URL: natsUrl,
        AGENTMESH_BUS_PREFIX: prefix,
        AGENTMESH_BUS_ACK_WAIT_MS: String(ackWaitMs),
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  children.push(child);
  let out = "";
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  await waitFor(() => /ready:/.test(out) || child.exitCode !== null, 20_000, "agent start");
  const m = /agent (\S+) ready:/.exec(out);
  if (!m) throw new Error(`agent did not start: ${out}`);
  return { child, agentId: m[1]! };
}

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  if (!nats) return;
  const nc = await connectNats(nats.url);
  const jsm = await jetstreamManager(nc);
  for (const s of Object.values(busNames(prefix).streams))
    await jsm.streams.delete(s).catch(() => false);
  await nc.close();
});

describe.skipIf(!nats)("two agent processes, one killed with SIGKILL mid-step", () => {
  it("completes every job exactly once", { timeout: 60_000 }, async () => {
    const bus = await createJetStreamBus({ prefix, servers: nats!.url, ackWaitMs });
    const results: StepResult[] = [];
    const sub = await bus.consumeResults({
      concurrency: 32,
      handler: (d) => {
        results.push(d.data);
      },
    });
    const [a, b] = await Promise.all([startAgent(nats!.url), startAgent(nats!.url)]);

    const jobs = Array.from({ length: 24 }, () => stepJob("util.sleep", { input: { ms: 400 } }));
    await Promise.all(jobs.map((j) => bus.publishJob(j)));

    // Kill A as soon as it is in the middle of a step.
    await waitFor(
      () => results.some((r) => r.agentId === a.agentId && r.status === StepResultStatus.STARTED),
      15_000,
      "agent A to start a step",
    );
    const startedByA = new Set(
      results
        .filter((r) => r.agentId === a.agentId && r.status === StepResultStatus.STARTED)
        .map((r) => r.attemptId),
    );
    const finishedByAAtKill = new Set(
      results
        .filter((r) => r.agentId === a.agentId && r.status === StepResultStatus.SUCCEEDED)
        .map((r) => r.attemptId),
    );
    a.child.kill("SIGKILL");
    await once(a.child, "exit");

    const succeeded = () => results.filter((r) => r.status === StepResultStatus.SUCCEEDED);
    await waitFor(() => succeeded().length >= jobs.length, 40_000, "all jobs to succeed");
    await new Promise((r) => setTimeout(r, ackWaitMs + 500)); // room for any duplicate to show

    const perAttempt = new Map<string, number>();
    for (const r of succeeded())
      perAttempt.set(r.attemptId, (perAttempt.get(r.attemptId) ?? 0) + 1);
    expect(perAttempt.size).toBe(jobs.length);
    for (const j of jobs) expect(perAttempt.get(j.attemptId), j.attemptId).toBe(1);
    // At least one step A had started but not finished was completed by B.
    const rescued = [...startedByA].filter((id) => !finishedByAAtKill.has(id));
    expect(rescued.length).toBeGreaterThan(0);
    const rescuedByB = succeeded().filter(
      (r) => rescued.includes(r.attemptId) && r.agentId === b.agentId,
    );
    expect(rescuedByB.length).toBeGreaterThan(0);

    b.child.kill("SIGTERM");
    const [code] = await once(b.child, "exit");
    expect(code).toBe(0); // drained and exited cleanly
    await sub.stop({ graceMs: 0 });
    await bus.close();
  });
});
