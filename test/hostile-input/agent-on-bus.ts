/**
 * Runs hostile jobs through the real agent runtime on real JetStream: the
 * agent (`runAgent`) consumes a private prefix with a short ack wait, every
 * handler call is counted per attempt, `/healthz` of this process (the host of
 * the agent) is probed from another thread, and each job's final result is
 * returned with how long it took and how often its handler ran — after the
 * ack wait has passed, so a redelivery would have shown.
 */
import type { JsonObject } from "@bufbuild/protobuf";
import { toJson } from "@bufbuild/protobuf";
import { durationFromMs, ValueSchema } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { type StepResult, StepResultStatus } from "../../gen/agentmesh/v1/jobs_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats, createJetStreamBus } from "../../lib/bus/jetstream-bus.js";
import { stepJob, waitFor } from "../../lib/bus/job-bus.contract.js";
import { createLogger } from "../../lib/log/logger.js";
import { runId } from "../../lib/testing/infra.js";
import type { AgentDefinition } from "../../sdk/agent/define-agent.js";
import { runAgent } from "../../sdk/agent/run-agent.js";
import { type ProbeReport, startHealthProbe } from "./health-probe.js";

export interface HostileCase {
  name: string;
  input: JsonObject;
}

export interface CaseOutcome {
  name: string;
  status: string;
  code?: string;
  retryable?: boolean;
  message?: string;
  /** The output of a job that succeeded, as JSON. */
  output?: string;
  /** Handler calls for the attempt (1 unless it was redelivered). */
  calls: number;
  /** Final results published for the attempt. */
  finals: number;
  tookMs: number;
}

export async function runOnBus(options: {
  natsUrl: string;
  agent: AgentDefinition;
  capability: string;
  cases: HostileCase[];
  /** Jobs in flight at once (no more than the agent runs, so none waits past the ack wait). */
  batch: number;
  timeoutMs: number;
  /** A harmless input run first, so the host's first-job work (compiling, loading) is not measured. */
  warmUp: JsonObject;
}): Promise<{ outcomes: CaseOutcome[]; health: ProbeReport }> {
  const ackWaitMs = 2_000;
  const prefix = runId("thostile");
  const bus = await createJetStreamBus({
    prefix,
    servers: options.natsUrl,
    ackWaitMs,
  });
  const results: StepResult[] = [];
  const sub = await bus.consumeResults({
    concurrency: 16,
    handler: (d) => void results.push(d.data),
  });
  const calls = new Map<string, number>();
  const skill = options.agent.skills[options.capability]!;
  const counted: AgentDefinition = {
    ...options.agent,
    skills: {
      [options.capability]: {
        ...skill,
        handler: (input, ctx) => {
          calls.set(ctx.attemptId, (calls.get(ctx.attemptId) ?? 0) + 1);
          return skill.handler(input, ctx);
        },
      },
    },
  };
  const agent = await runAgent(counted, {
    bus,
    handleSignals: false,
    log: createLogger({ name: "hostile", level: "silent" }),
  });
  const finals = (attemptId: string) =>
    results.filter((r) => r.attemptId === attemptId && r.status !== StepResultStatus.STARTED);
  const warm = stepJob(options.capability, { input: options.warmUp });
  await bus.publishJob(warm);
  await waitFor(() => finals(warm.attemptId).length > 0, 30_000, "the warm-up job");
  // Measured from here on: the cases, not the agent's start-up.
  const probe = await startHealthProbe();
  try {
    (attemptId: string) =>
      results.filter((r) => r.attemptId === attemptId && r.status !== StepResultStatus.STARTED);
    const jobs = options.cases.map((c) => ({
      c,
      job: stepJob(options.capability, {
        input: c.input,
        timeout: durationFromMs(options.timeoutMs),
      }),
    }));
    const sentAt = new Map<string, number>();
    for (let i = 0; i < jobs.length; i += options.batch) {
      const some = jobs.slice(i, i + options.batch);
      for (const { job } of some) sentAt.set(job.attemptId, Date.now());
      await Promise.all(some.map(({ job }) => bus.publishJob(job)));
      await waitFor(
        () => some.every(({ job }) => finals(job.attemptId).length > 0),
        options.timeoutMs + 30_000,
        "results",
      );
    }
    // Past the ack wait: a job whose delivery was not settled would come back now.
    await new Promise((r) => setTimeout(r, ackWaitMs + 1_000));
    const health = await probe.report();
    const outcomes = jobs.map(({ c, job }): CaseOutcome => {
      const r = finals(job.attemptId)[0]!;
      const finishedMs = Number(r.finishedAt!.seconds) * 1000 + r.finishedAt!.nanos / 1e6;
      return {
        name: c.name,
        status: StepResultStatus[r.status],
        ...(r.error
          ? { code: r.error.code, retryable: r.error.retryable, message: r.error.message }
          : {}),
        ...(r.output ? { output: JSON.stringify(toJson(ValueSchema, r.output)) } : {}),
        calls: calls.get(job.attemptId) ?? 0,
        finals: finals(job.attemptId).length,
        tookMs: Math.round(finishedMs - sentAt.get(job.attemptId)!),
      };
    });
    console.table(outcomes.map(({ message: _m, output: _o, ...row }) => row));
    console.log("healthz of the host during the cases:", JSON.stringify(health));
    return { outcomes, health };
  } finally {
    await agent.stop();
    await sub.stop();
    await probe.stop();
    await bus.close();
    const nc = await connectNats(options.natsUrl);
    const jsm = await jetstreamManager(nc);
    for (const s of Object.values(busNames(prefix).streams))
      await jsm.streams.delete(s).catch(() => false);
    await nc.close();
  }
}
