/**
 * One chaos scenario, the same shape for every fault: the workload runs; the
 * fault strikes and ends (`fault` resolves with the moment it ended: the
 * restart, SIGCONT or kill); recovery is measured; the workload keeps going
 * for `afterMs` after recovery; then the audit. Prints one machine-readable
 * line, `CHAOS_RESULT {...}`, which docs/performance.md's resilience section
 * quotes.
 *
 * Recovery, from the fault's end: every running agent process holds a LIVE
 * registration again, and a probe goal (echo, through the gateway, one per
 * second) has succeeded. `backlogMs`: until the last goal submitted before the
 * fault's end finished (a goal refused during the fault counts from its first
 * try, so it includes the client's retries). `inFlightMs`: until the last goal
 * the mesh had acknowledged before the fault's end finished: what was in flight.
 */
import { readFile } from "node:fs/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { expect } from "vitest";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats } from "../../lib/bus/jetstream-bus.js";
import { sleep, waitFor } from "../../lib/testing/wait-for.js";
import { type Audit, auditFindings, auditGoals } from "./audit.js";
import type { ChaosMesh } from "./chaos-mesh.js";
import { GoalBatch, goalMix, startWorkload, type WorkloadResult } from "./workload.js";

export interface ScenarioOptions {
  name: string;
  /** Goals per second. Default 1.5. */
  rate?: number;
  /** Workload before the fault. Default 6 s. */
  beforeMs?: number;
  /** Strikes and ends the fault; resolves with when it ended (epoch ms). */
  fault(): Promise<number>;
  /** Workload after recovery. Default 8 s. */
  afterMs?: number;
  /** Longest wait for recovery. Default 60 s. */
  recoveryTimeoutMs?: number;
}

export interface ScenarioResult {
  name: string;
  workload: WorkloadResult;
  audit: Audit;
  findings: string[];
  /** From the fault's end until agents were live and a probe goal succeeded; undefined if never. */
  recoveredMs: number | undefined;
  agentsLiveMs: number | undefined;
  probeMs: number | undefined;
  backlogMs: number | undefined;
  inFlightMs: number | undefined;
  /** Goals submitted after recovery, and how many of them did not succeed. */
  afterRecovery: number;
  afterRecoveryFailed: number;
  /** Median latency (ms) of quick goals (echo, summarize) before the fault and after recovery. */
  medianBeforeMs: number | undefined;
  medianAfterMs: number | undefined;
  deadLetters: Record<string, number>;
}

const quickKinds = new Set(["echo", "summarize"]);

export async function runScenario(mesh: ChaosMesh, o: ScenarioOptions): Promise<ScenarioResult> {
  await ensureAgentsLive(mesh);
  const load = startWorkload(mesh, { rate: o.rate ?? 1.5 });
  await sleep(o.beforeMs ?? 6_000);
  const faultAt = Date.now();
  const endedAt = await o.fault();
  const recovery = await measureRecovery(mesh, endedAt, o.recoveryTimeoutMs ?? 60_000);
  const recoveredAt =
    recovery.recoveredMs === undefined ? undefined : endedAt + recovery.recoveredMs;
  await sleep(o.afterMs ?? 8_000);
  const workload = await load.stop();
  const probes = await recovery.probes.done();
  const submitted = [...workload.acked, ...probes.acked];
  const audit = await auditGoals(mesh, submitted);
  const findings = auditFindings(audit);
  if (workload.unacked.length > 0)
    findings.push(
      `never acknowledged (${workload.unacked.length}): ${workload.unacked.slice(0, 5).join(" ")}`,
    );
  if (recovery.recoveredMs === undefined) {
    const notLive = await mesh.agentsNotLive().catch((e: unknown) => [String(e)]);
    findings.push(
      `not recovered within ${o.recoveryTimeoutMs ?? 60_000} ms (agents not live: ${notLive.join(", ") || "none"}; probe ${recovery.probeMs === undefined ? "never succeeded" : "succeeded"})`,
    );
  }
  const after =
    recoveredAt === undefined ? [] : workload.acked.filter((s) => s.sentAt >= recoveredAt);
  const afterRecoveryFailed = after.filter((s) => !audit.latencyMs.has(s.key)).length;
  if (recoveredAt !== undefined && after.length === 0)
    findings.push("no goal was submitted after recovery");
  const median = (keys: string[]) => {
    const xs = keys.map((k) => audit.latencyMs.get(k)).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  };
  const quick = (s: { kind: string }) => quickKinds.has(s.kind);
  const beforeFault = workload.acked.filter((s) => s.sentAt < faultAt);
  const beforeEnd = workload.acked.filter((s) => s.sentAt < endedAt);
  const untilFinished = (goals: typeof beforeEnd) => {
    const at = goals.map((s) => audit.finishedAt.get(s.key));
    if (at.some((x) => x === undefined)) return undefined;
    return Math.max(0, ...at.map((t) => t! - endedAt));
  };
  const deadLetters = await countDeadLetters(mesh);
  for (const [subject, n] of Object.entries(deadLetters))
    findings.push(`dead letters on ${subject}: ${n}`);
  const result: ScenarioResult = {
    name: o.name,
    workload,
    audit,
    findings,
    recoveredMs: recovery.recoveredMs,
    agentsLiveMs: recovery.agentsLiveMs,
    probeMs: recovery.probeMs,
    backlogMs: untilFinished(beforeEnd),
    inFlightMs: untilFinished(workload.acked.filter((s) => s.ackedAt < endedAt)),
    afterRecovery: after.length,
    afterRecoveryFailed,
    medianBeforeMs: median(beforeFault.filter(quick).map((s) => s.key)),
    medianAfterMs: median(after.filter(quick).map((s) => s.key)),
    deadLetters,
  };
  console.log(
    `CHAOS_RESULT ${JSON.stringify({
      scenario: o.name,
      goals: audit.acked,
      succeeded: audit.succeeded,
      recoveredMs: result.recoveredMs ?? null,
      agentsLiveMs: result.agentsLiveMs ?? null,
      probeMs: result.probeMs ?? null,
      backlogMs: result.backlogMs ?? null,
      inFlightMs: result.inFlightMs ?? null,
      afterRecovery: result.afterRecovery,
      medianBeforeMs: result.medianBeforeMs ?? null,
      medianAfterMs: result.medianAfterMs ?? null,
      submitFailures: workload.failures,
      runs: audit.runs,
      skippedRedeliveries: audit.skipped,
      killedEffects: audit.killedEffects,
      retriedSteps: audit.retriedSteps,
      findings: findings.length,
    })}`,
  );
  for (const f of findings) console.log(`CHAOS_FINDING ${o.name}: ${f}`);
  if (workload.samples.length > 0)
    console.log(`CHAOS_SUBMIT_FAILURES ${o.name}: ${workload.samples.join(" | ")}`);
  return result;
}

/**
 * Before a scenario: every agent process live. One a previous scenario left
 * unregistered (a finding there) is replaced, so scenarios stay independent.
 */
export async function ensureAgentsLive(mesh: ChaosMesh): Promise<void> {
  const ok = await waitFor(
    "agents live",
    async () => (await mesh.agentsNotLive()).length === 0,
    20_000,
    500,
  ).then(
    () => true,
    () => false,
  );
  if (ok) return;
  for (const key of await mesh.agentsNotLive()) {
    console.log(`chaos: replacing ${key}, still not live from an earlier scenario`);
    await mesh.kill(key);
    await mesh.startAgent(key.slice("agent-".length).split("#")[0] as "util");
  }
}

async function measureRecovery(mesh: ChaosMesh, from: number, timeoutMs: number) {
  const probes = new GoalBatch(mesh, { mix: [goalMix[0]!] });
  const store = await mesh.store();
  let agentsLiveAt: number | undefined;
  let probeOkAt: number | undefined;
  let n = 0;
  let lastProbe = 0;
  while (Date.now() - from < timeoutMs && (agentsLiveAt === undefined || probeOkAt === undefined)) {
    if (Date.now() - lastProbe >= 1_000) {
      probes.submit(n++);
      lastProbe = Date.now();
    }
    if (agentsLiveAt === undefined) {
      const notLive = await mesh.agentsNotLive().catch(() => ["(store unreachable)"]);
      if (notLive.length === 0) agentsLiveAt = Date.now();
    }
    const ids = probes.acked.map((s) => s.goalId);
    if (probeOkAt === undefined && ids.length > 0) {
      const rows = await store.orm.em
        .fork()
        .execute<{ at: Date | null }[]>(
          `select min(finished_at) as at from "${mesh.schema}".goals where id in (?) and status = 'SUCCEEDED'`,
          [ids],
        )
        .catch(() => [{ at: null }]);
      if (rows[0]?.at) probeOkAt = new Date(rows[0].at).getTime();
    }
    await sleep(250);
  }
  const since = (t: number | undefined) => (t === undefined ? undefined : Math.max(0, t - from));
  return {
    probes,
    agentsLiveMs: since(agentsLiveAt),
    probeMs: since(probeOkAt),
    recoveredMs:
      agentsLiveAt === undefined || probeOkAt === undefined
        ? undefined
        : Math.max(0, agentsLiveAt - from, probeOkAt - from),
  };
}

/** Messages on the dead-letter stream by subject: none may be left by a fault. */
async function countDeadLetters(mesh: ChaosMesh): Promise<Record<string, number>> {
  const nc = await connectNats(mesh.env.NATS_URL!, "chaos-audit", 2_000);
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams
      .info(busNames(mesh.prefix).streams.dlq, { subjects_filter: ">" })
      .catch(() => undefined);
    return { ...(info?.state.subjects ?? {}) };
  } finally {
    await nc.close();
  }
}

/** JetStream's ack wait of the capability's job consumer, in ms. */
export async function ackWaitMs(mesh: ChaosMesh, capability: string): Promise<number> {
  const nc = await connectNats(mesh.env.NATS_URL!, "chaos-audit", 2_000);
  try {
    const jsm = await jetstreamManager(nc);
    const names = busNames(mesh.prefix);
    const subject = names.jobSubject(capability);
    let wait = 0;
    for await (const c of jsm.consumers.list(names.streams.jobs)) {
      const filters = [c.config.filter_subject, ...(c.config.filter_subjects ?? [])];
      if (filters.includes(subject)) wait = Math.max(wait, Number(c.config.ack_wait) / 1e6);
    }
    if (wait === 0) throw new Error(`no job consumer for ${capability}`);
    return wait;
  } finally {
    await nc.close();
  }
}

/** Resolves once agent `key` runs a slow step (a `start` of step `slow` without its effect yet). */
export async function slowStepRunningOn(mesh: ChaosMesh, key: string): Promise<void> {
  const pid = String(mesh.pid(key));
  await waitFor(
    `${key} to run a slow step`,
    async () => {
      const lines = (await readFile(`${mesh.ledger}.log`, "utf8").catch(() => "")).split("\n");
      const started = new Set<string>();
      for (const l of lines) {
        const [event, , step, attempt, , p] = l.split(" ");
        if (step !== "slow" || p !== pid) continue;
        if (event === "start") started.add(attempt!);
        else started.delete(attempt!);
      }
      return started.size > 0;
    },
    60_000,
    100,
  );
  // Into the step, not at its first instant.
  await sleep(500);
}

/** The assertions every scenario shares: the audit is clean and the mesh recovered within `recoveryBoundMs`. */
export function expectScenario(
  r: ScenarioResult,
  o: { submitCodes: string[]; recoveryBoundMs: number },
): void {
  expect(r.findings).toEqual([]);
  expect(r.audit.acked).toBeGreaterThanOrEqual(20);
  expect(r.afterRecovery).toBeGreaterThan(0);
  expect(r.afterRecoveryFailed).toBe(0);
  for (const code of Object.keys(r.workload.failures)) expect(o.submitCodes).toContain(code);
  expect(r.recoveredMs).toBeLessThan(o.recoveryBoundMs);
}
