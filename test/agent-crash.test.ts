/**
 * Attempt fencing across a crash, on the shipped defaults (30 s ack wait): two
 * agent processes (`agentmesh agent util`) share util.sleep jobs on real
 * JetStream and one is killed with SIGKILL mid-step. This test plays the
 * executor's part as its goal reducer does (a new attempt only after the old
 * one's deadline plus the grace). The killed agent's jobs come back to the other
 * agent after the ack wait and are refused as AGENT_LOST without running; their
 * next attempts run once; no attempt runs twice and none runs after it was superseded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import { type StepJob, type StepResult, StepResultStatus } from "../gen/agentmesh/v1/jobs_pb.js";
import { agentLostCode, attemptFenceGraceMs } from "../lib/bus/attempt-fence.js";
import { busNames } from "../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../lib/bus/jetstream-bus.js";
import { sleep, stepJob, waitFor } from "../lib/bus/job-bus.contract.js";
import { resolveBusOptions } from "../lib/bus/job-bus.js";
import { needNats, runId } from "../lib/testing/infra.js";

const nats = await needNats();
const prefix = runId("tcrash");
const ackWaitMs = resolveBusOptions().ackWaitMs; // the shipped default, not changed here
// Longer than the ack wait, so the crashed agent's jobs come back before their deadline.
const stepTimeoutMs = ackWaitMs + 10_000;
const children: ChildProcess[] = [];

/** Starts `agentmesh agent util` and resolves with its agent id once it consumes. */
async function startAgent(natsUrl: string): Promise<{ child: ChildProcess; agentId: string }> {
  const child = spawn(
    process.execPath,
    ["bin/agentmesh.js", "agent", "util", "--concurrency", "3", "--no-registry"],
    {
      env: { ...process.env, NATS_URL: natsUrl, AGENTMESH_BUS_PREFIX: prefix, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  children.push(child);
  let out = "";
  child.stdout!.on("data", (c: Buffer) => {
    out += c.toString();
  });
  await waitFor(() => /ready:/.test(out) || child.exitCode !== null, 30_000, "agent start");
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

describe.skipIf(!nats)("an agent killed with SIGKILL mid-step, on the default ack wait", () => {
  it("its jobs are refused when they come back, their next attempts run once, nothing runs twice", {
    timeout: 2 * stepTimeoutMs + 60_000,
  }, async () => {
    const bus = await createJetStreamBus({ prefix, servers: nats!.url });
    const results: Array<StepResult & { receivedAt: number }> = [];
    const sub = await bus.consumeResults({
      concurrency: 32,
      handler: (d) => {
        results.push(Object.assign(d.data, { receivedAt: Date.now() }));
      },
    });
    const [a, b] = await Promise.all([startAgent(nats!.url), startAgent(nats!.url)]);
    const attempt = (n: number, step: string, now: number): StepJob =>
      stepJob("util.sleep", {
        attemptId: `${step}:${n}`,
        stepId: step,
        attempt: n,
        input: { ms: 4_000 },
        timeout: { seconds: BigInt(stepTimeoutMs / 1000), nanos: 0 },
        dispatchedAt: timestampFromMs(now),
        attemptDeadline: timestampFromMs(now + stepTimeoutMs),
      });
    const t0 = Date.now();
    const steps = Array.from({ length: 8 }, () => runId("s"));
    const first = steps.map((s) => attempt(1, s, t0));
    await Promise.all(first.map((j) => bus.publishJob(j)));
    const of = (id: string, status?: StepResultStatus) =>
      results.filter((r) => r.attemptId === id && (status === undefined || r.status === status));
    const final = (id: string) => of(id).find((r) => r.status !== StepResultStatus.STARTED);

    await waitFor(
      () => results.some((r) => r.agentId === a.agentId && r.status === StepResultStatus.STARTED),
      20_000,
      "agent A to start a step",
    );
    a.child.kill("SIGKILL");
    await once(a.child, "exit");
    const killedAt = Date.now();

    // The executor's part: a new attempt only once the old one's deadline (and grace) passed.
    const redispatchAt = timestampMs(first[0]!.attemptDeadline!) + attemptFenceGraceMs;
    await waitFor(() => Date.now() >= redispatchAt, stepTimeoutMs + 5_000, "attempt deadline");
    const cut = first.filter((j) => final(j.attemptId)?.status !== StepResultStatus.SUCCEEDED);
    const midStep = cut.filter((j) => of(j.attemptId, StepResultStatus.STARTED).length > 0);
    expect(midStep.length).toBeGreaterThan(0);
    const second = cut.map((j) => attempt(2, j.stepId, Date.now()));
    await Promise.all(second.map((j) => bus.publishJob(j)));
    await waitFor(
      () => second.every((j) => final(j.attemptId)?.status === StepResultStatus.SUCCEEDED),
      30_000,
      "second attempts to succeed",
    );
    await sleep(5_000); // room for any late duplicate to show

    for (const j of cut) {
      // Came back to B after the ack wait and was refused there: never run again.
      const r = final(j.attemptId);
      expect(r?.error?.code, j.attemptId).toBe(agentLostCode);
      expect(r?.agentId).toBe(b.agentId);
      expect(r!.receivedAt - killedAt).toBeGreaterThanOrEqual(ackWaitMs - 10_000);
      expect(r!.receivedAt).toBeLessThan(redispatchAt);
      expect(of(j.attemptId, StepResultStatus.STARTED).every((s) => s.agentId === a.agentId)).toBe(
        true,
      );
    }
    for (const j of second) {
      expect(of(j.attemptId, StepResultStatus.STARTED)).toHaveLength(1);
      expect(of(j.attemptId, StepResultStatus.SUCCEEDED)).toHaveLength(1);
    }
    // Each step's handler ran at most once per attempt, and succeeded exactly once.
    for (const step of steps) {
      const mine = results.filter((r) => r.stepId === step);
      expect(mine.filter((r) => r.status === StepResultStatus.SUCCEEDED)).toHaveLength(1);
      const starts = mine.filter((r) => r.status === StepResultStatus.STARTED);
      expect(new Set(starts.map((s) => s.attemptId)).size).toBe(starts.length);
    }
    console.log(
      `crash: ${midStep.length} steps cut mid-step, ${cut.length - midStep.length} prefetched; refused ${Math.round((final(cut[0]!.attemptId)!.receivedAt - killedAt) / 1000)} s after the kill; all done ${Math.round((Date.now() - t0) / 1000)} s after dispatch`,
    );

    b.child.kill("SIGTERM");
    const [code] = await once(b.child, "exit");
    expect(code).toBe(0); // drained and exited cleanly
    await sub.stop({ graceMs: 0 });
    await bus.close();
  });
});
