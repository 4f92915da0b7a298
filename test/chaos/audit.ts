/**
 * The end-of-scenario audit, from the mesh's own tables and the agents'
 * side-effect ledger (`ledger-agent.ts`), after waiting for every
 * acknowledged goal to end:
 *
 * - **lost**: an acknowledged goal that is not in the store under its
 *   idempotency key;
 * - **notTerminal** / **notSucceeded**: every kind of the workload succeeds
 *   without faults, so any other end is a goal the fault made fail;
 * - **finishedTwice**: more than one `finished` event;
 * - **doubleEffects**: a step whose effect happened in two attempts, except
 *   an attempt that is not the step's successful one and whose process the
 *   scenario killed (it may have done its effect and died before reporting:
 *   at-least-once delivery cannot tell, and handlers key effects on the step
 *   for that reason);
 * - **missingEffects**: a succeeded step without its successful attempt's effect;
 * - **lateRuns**: a handler that started an attempt after the step had
 *   finished or after a later attempt of it was dispatched (a superseded
 *   attempt must not start anywhere).
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { waitFor } from "../../lib/testing/wait-for.js";
import type { ChaosMesh } from "./chaos-mesh.js";
import type { Submitted } from "./workload.js";

export interface Audit {
  acked: number;
  succeeded: number;
  lost: string[];
  notTerminal: string[];
  notSucceeded: string[];
  finishedTwice: string[];
  doubleEffects: string[];
  missingEffects: string[];
  lateRuns: string[];
  /** Steps dispatched more than once (the fault hit them), flaky-demo's aside. */
  retriedSteps: number;
  /** Effects of attempts cut short by a kill (forgiven, see above). */
  killedEffects: number;
  /** Handler runs, and runs that found their attempt's effect already done. */
  runs: number;
  skipped: number;
  /** Goal latency (created → finished, ms) by idempotency key, for succeeded goals. */
  latencyMs: Map<string, number>;
  /** When each ended goal finished (epoch ms), by idempotency key. */
  finishedAt: Map<string, number>;
}

const terminal = ["SUCCEEDED", "FAILED", "CANCELLED"];
const first = <T>(xs: T[]) => xs.slice(0, 10);
/** A timestamp column as epoch ms (the driver may hand back a string). */
const ms = (t: Date | string) => new Date(t).getTime();

/** Waits up to `timeoutMs` for every acknowledged goal to end, then audits. */
export async function auditGoals(
  mesh: ChaosMesh,
  submitted: Submitted[],
  timeoutMs = 120_000,
): Promise<Audit> {
  const store = await mesh.store();
  const sql = <T>(text: string, params: unknown[] = []) =>
    store.orm.em.fork().execute<T[]>(text.replaceAll("$s.", `"${mesh.schema}".`), params);
  const ids = submitted.map((s) => s.goalId);
  type GoalRow = {
    id: string;
    idempotency_key: string;
    status: string;
    error: unknown;
    created_at: Date | string;
    finished_at: Date | string | null;
  };
  let rows: GoalRow[] = [];
  await waitFor(
    "every acknowledged goal to end",
    async () => {
      // knex expands an array binding into a list.
      rows = await sql<GoalRow>(
        `select id, idempotency_key, status, error, created_at, finished_at from $s.goals where id in (?)`,
        [ids],
      );
      return rows.length === ids.length && rows.every((r) => terminal.includes(r.status));
    },
    timeoutMs,
    500,
  ).catch((err: unknown) => {
    // Reported below as goals not terminal; anything else is the audit's own bug.
    if (!String(err).includes("timed out")) throw err;
  });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const lost = submitted.filter((s) => byId.get(s.goalId)?.idempotency_key !== s.key);
  const notTerminal = rows.filter((r) => !terminal.includes(r.status));
  const notSucceeded = rows.filter((r) => terminal.includes(r.status) && r.status !== "SUCCEEDED");
  const latencyMs = new Map<string, number>();
  const finishedAt = new Map<string, number>();
  for (const r of rows) {
    if (r.finished_at) finishedAt.set(r.idempotency_key, ms(r.finished_at));
    if (r.status === "SUCCEEDED" && r.finished_at)
      latencyMs.set(r.idempotency_key, ms(r.finished_at) - ms(r.created_at));
  }

  const twice = await sql<{ goal_id: string; n: string }>(
    `select goal_id, count(*) as n from $s.goal_events
      where type = 'finished' and goal_id in (?) group by goal_id having count(*) > 1`,
    [ids],
  );

  // Steps and attempts of these goals.
  const steps = await sql<{
    goal_id: string;
    step_id: string;
    status: string;
    finished_at: Date | string | null;
  }>(`select goal_id, step_id, status, finished_at from $s.steps where goal_id in (?)`, [ids]);
  const attempts = await sql<{
    attempt_id: string;
    goal_id: string;
    step_id: string;
    attempt: number;
    outcome: string;
    dispatched_at: Date | string;
  }>(
    `select attempt_id, goal_id, step_id, attempt, outcome, dispatched_at from $s.step_attempts where goal_id in (?)`,
    [ids],
  );
  const stepKey = (goal: string, step: string) => `${goal}.${step}`;
  const succeeded = new Set(
    attempts.filter((a) => a.outcome === "SUCCEEDED").map((a) => a.attempt_id),
  );
  // flaky-demo's step fails its first try on purpose.
  const retriedSteps = new Set(
    attempts
      .filter((a) => a.attempt > 1 && a.step_id !== "flaky")
      .map((a) => stepKey(a.goal_id, a.step_id)),
  );

  // The ledger: effect files `<goal>.<step>.<attempt>` holding the pid, by replica slot
  // (a committee step runs one attempt per replica on purpose; attempt ids end in `:<replica>`).
  const wanted = new Set(ids);
  const effects = new Map<string, { attempt: string; pid: number }[]>();
  for (const f of await readdir(mesh.ledger).catch(() => [] as string[])) {
    const [goal, step] = f.split(".", 2) as [string, string];
    if (!wanted.has(goal)) continue;
    const attempt = f.slice(goal.length + step.length + 2);
    const pid = Number(await readFile(join(mesh.ledger, f), "utf8"));
    const slot = `${stepKey(goal, step)}#${attempt.split(":").pop()}`;
    effects.set(slot, [...(effects.get(slot) ?? []), { attempt, pid }]);
  }
  const doubleEffects: string[] = [];
  let killedEffects = 0;
  const effectOf = new Set<string>();
  for (const [slot, list] of effects) {
    const counted = list.filter((e) => {
      effectOf.add(e.attempt);
      if (succeeded.has(e.attempt) || !mesh.killedPids.has(e.pid)) return true;
      killedEffects++;
      return false;
    });
    if (counted.length > 1)
      doubleEffects.push(`${slot}: ${counted.map((e) => e.attempt).join(", ")}`);
  }
  const missingEffects = steps
    .filter((s) => s.status === "SUCCEEDED" && s.step_id)
    .filter(
      (s) =>
        !attempts.some(
          (a) =>
            a.goal_id === s.goal_id &&
            a.step_id === s.step_id &&
            succeeded.has(a.attempt_id) &&
            effectOf.has(a.attempt_id),
        ),
    )
    .map((s) => stepKey(s.goal_id, s.step_id));

  const log = (await readFile(`${mesh.ledger}.log`, "utf8").catch(() => ""))
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [event, goal, step, attempt, delivery, pid, at] = l.split(" ");
      return { event, goal: goal!, step: step!, attempt: attempt!, delivery, pid, at: Number(at) };
    })
    .filter((l) => wanted.has(l.goal));
  const stepFinishedAt = new Map(
    steps
      .filter((s) => s.finished_at)
      .map((s) => [stepKey(s.goal_id, s.step_id), ms(s.finished_at!)]),
  );
  const attemptOf = new Map(attempts.map((a) => [a.attempt_id, a]));
  const lateRuns: string[] = [];
  for (const l of log.filter((x) => x.event === "start")) {
    const k = stepKey(l.goal, l.step);
    const done = stepFinishedAt.get(k);
    const mine = attemptOf.get(l.attempt);
    const superseded = attempts.find(
      (a) =>
        a.goal_id === l.goal &&
        a.step_id === l.step &&
        mine !== undefined &&
        a.attempt > mine.attempt &&
        ms(a.dispatched_at) < l.at,
    );
    if (done !== undefined && l.at > done)
      lateRuns.push(
        `${l.attempt} (delivery ${l.delivery}) started ${l.at - done} ms after its step finished`,
      );
    else if (superseded)
      lateRuns.push(
        `${l.attempt} (delivery ${l.delivery}) started after attempt ${superseded.attempt} was dispatched`,
      );
  }

  const describe = (r: GoalRow) =>
    `${r.id} ${r.status}${r.error ? ` ${JSON.stringify(r.error).slice(0, 300)}` : ""}`;
  return {
    acked: ids.length,
    succeeded: rows.filter((r) => r.status === "SUCCEEDED").length,
    lost: first(lost.map((s) => `${s.key} → ${s.goalId}`)),
    notTerminal: first(notTerminal.map(describe)),
    notSucceeded: first(notSucceeded.map(describe)),
    finishedTwice: first(twice.map((r) => r.goal_id)),
    doubleEffects: first(doubleEffects),
    missingEffects: first(missingEffects),
    lateRuns: first(lateRuns),
    killedEffects,
    retriedSteps: retriedSteps.size,
    runs: log.filter((l) => l.event === "start").length,
    skipped: log.filter((l) => l.event === "skip").length,
    latencyMs,
    finishedAt,
  };
}

/** The audit's verdict lines: empty when the scenario kept every promise. */
export function auditFindings(a: Audit): string[] {
  const out: string[] = [];
  const list = (name: string, xs: string[]) => {
    if (xs.length > 0)
      out.push(`${name} (${xs.length}${xs.length === 10 ? "+" : ""}): ${xs.join(" | ")}`);
  };
  list("lost", a.lost);
  list("not terminal", a.notTerminal);
  list("not succeeded", a.notSucceeded);
  list("finished twice", a.finishedTwice);
  list("step effect twice", a.doubleEffects);
  list("succeeded step without its effect", a.missingEffects);
  list("late or superseded runs", a.lateRuns);
  return out;
}
