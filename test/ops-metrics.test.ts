/**
 * The SLIs under a real workload, and every query of the dashboards and rules
 * against what the processes really export. A mesh (services in this process,
 * real mTLS, PostgreSQL, NATS JetStream), the gateway and the util agent as
 * their own processes (`agentmesh serve gateway`, `agentmesh agent util`), goals
 * submitted through the gateway: `/metrics` of every process is scraped before
 * and after, each SLI must move, and each metric and label that a dashboard
 * panel or a Prometheus rule names must show in some scrape, so no panel or
 * alert points at nothing. Shipped settings: tenant `acme` is not in
 * AGENTMESH_METRICS_TENANTS, so it is counted as `other`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ExecutorService } from "../gen/agentmesh/v1/executor_pb.js";
import { dashboardSpecs } from "../lib/ops/grafana-dashboards.js";
import { promqlNames } from "../lib/ops/promql-names.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { type ChildComponent, killAllChildren, spawnComponent } from "../lib/testing/processes.js";
import { waitFor } from "../lib/testing/wait-for.js";
import { issueCertificate } from "../lib/tls/dev-ca.js";
import { createClient } from "../sdk/client/create-client.js";

const pg = await needPostgres();
const nats = await needNats();

/** Samples of one scrape: `name` → each sample's labels and value. */
type Scrape = Map<string, { labels: Record<string, string>; value: number }[]>;

function parseScrape(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!;
    }
    const list = out.get(m[1]!) ?? [];
    list.push({ labels, value: Number(m[4]) });
    out.set(m[1]!, list);
  }
  return out;
}

/** The sum of `name`'s samples whose labels include `match`. */
function sum(scrape: Scrape, name: string, match: Record<string, string> = {}): number {
  return (scrape.get(name) ?? [])
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

async function scrape(base: string, accept?: string): Promise<string> {
  const res = await fetch(`${base}/metrics`, accept ? { headers: { accept } } : {});
  expect(res.status).toBe(200);
  return res.text();
}

describe.skipIf(!pg || !nats)("ops: SLIs and every dashboard and rule query on /metrics", () => {
  let mesh: TestMesh;
  let gateway: ChildComponent;
  let agent: ChildProcess;
  let agentHealth: string;
  let apiKey: string;

  beforeAll(async () => {
    mesh = await startTestMesh({ databaseUrl: pg!.url, natsUrl: nats!.url });
    const k = newApiKey();
    await mesh.runtime.store.tenant(mesh.tenantId).apiKeys.create({
      keyId: k.keyId,
      secretHash: k.secretHash,
      name: "w",
      roles: ["goals.write"],
    });
    apiKey = k.secret;
    const env = { ...mesh.childEnv(), AGENTMESH_GATEWAY_PORT: "0" };
    let out = "";
    agent = spawn(process.execPath, ["bin/agentmesh.js", "agent", "util"], {
      env: { ...process.env, ...env, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    agent.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    [gateway] = await Promise.all([
      spawnComponent("gateway", env),
      waitFor("agent ready", () => /ready:/.test(out) || agent.exitCode !== null, 30_000),
    ]);
    agentHealth = /health (http:\/\/\S+?)\)/.exec(out)?.[1] ?? "";
    expect(agentHealth, out).not.toBe("");
  }, 60_000);

  afterAll(async () => {
    agent?.kill("SIGKILL");
    await killAllChildren();
    await mesh?.stop();
  });

  it("each SLI moves under a workload, with trace ids as exemplars", {
    timeout: 60_000,
  }, async () => {
    const services = mesh.runtime.http!.url;
    const before = {
      services: parseScrape(await scrape(services)),
      agent: parseScrape(await scrape(agentHealth)),
    };
    const client = createClient({ baseUrl: gateway.url!, apiKey });
    const echoes = 5;
    const submitted = await Promise.all([
      ...Array.from({ length: echoes }, (_, i) =>
        client.executor.submitGoal({ kind: "echo", input: { message: `m${i}` } }),
      ),
      client.executor.submitGoal({ kind: "flaky-demo", input: { failTimes: 4 } }),
    ]);
    const ids = submitted.map((s) => s.goal!.goalId);
    await waitFor(
      "goals finished",
      async () => {
        const { goals } = await mesh.runtime.store
          .tenant(mesh.tenantId)
          .goals.list({ pageSize: 50 });
        return ids.every((id) =>
          goals.some((g) => g.id === id && ["SUCCEEDED", "FAILED"].includes(g.status)),
        );
      },
      30_000,
    );
    const after = {
      services: parseScrape(await scrape(services)),
      agent: parseScrape(await scrape(agentHealth)),
    };
    const moved = (where: "services" | "agent", name: string, match: Record<string, string>) =>
      sum(after[where], name, match) - sum(before[where], name, match);

    // Goals: counted by status under the folded tenant label, and timed.
    const acme = { tenant: "other" };
    expect(
      moved("services", "agentmesh_goals_finished_total", {
        ...acme,
        kind: "echo",
        status: "succeeded",
      }),
    ).toBe(echoes);
    expect(
      moved("services", "agentmesh_goals_finished_total", {
        ...acme,
        kind: "flaky-demo",
        status: "failed",
      }),
    ).toBe(1);
    expect(
      moved("services", "agentmesh_goal_duration_seconds_count", { ...acme, kind: "echo" }),
    ).toBe(echoes);
    // Jobs, in the agent process: queue wait, run time, settled by outcome.
    const echo = { capability: "util.echo" };
    expect(moved("agent", "agentmesh_job_queue_wait_seconds_count", { ...acme, ...echo })).toBe(
      echoes,
    );
    expect(moved("agent", "agentmesh_step_duration_seconds_count", { ...acme, ...echo })).toBe(
      echoes,
    );
    expect(moved("agent", "agentmesh_agent_jobs_total", { ...echo, outcome: "succeeded" })).toBe(
      echoes,
    );
    expect(
      moved("agent", "agentmesh_agent_jobs_total", { capability: "util.flaky", outcome: "failed" }),
    ).toBe(4);
    // Latency lands in a bucket below a minute.
    expect(
      moved("services", "agentmesh_goal_duration_seconds_bucket", {
        ...acme,
        kind: "echo",
        le: "60",
      }),
    ).toBe(echoes);

    // Exemplars: OpenMetrics, when the scraper asks for it, links buckets to the goals' traces.
    const om = await scrape(services, "application/openmetrics-text;version=1.0.0");
    const traceIds = new Set(
      (await mesh.runtime.store.tenant(mesh.tenantId).goals.list({ pageSize: 50 })).goals
        .map((g) => g.traceId)
        .filter(Boolean),
    );
    const exemplars = [
      ...om.matchAll(
        /^agentmesh_goal_duration_seconds_bucket\{[^}]*kind="echo"[^}]*\} \d+ # \{trace_id="([0-9a-f]{32})"\}/gm,
      ),
    ].map((m) => m[1]);
    expect(exemplars.length).toBeGreaterThan(0);
    for (const t of exemplars) expect(traceIds).toContain(t);
    console.log(
      `ops: ${echoes} echo goals and 1 failing goal moved every SLI; ${exemplars.length} goal-latency buckets carry trace ids`,
    );
  });

  it("every metric and label the dashboards and rules query shows on some process's /metrics", {
    timeout: 60_000,
  }, async () => {
    // What only happens now and then, made to happen: a denied call, a rotated certificate, a dead letter.
    const asAgent = await mesh.clientAs(ExecutorService, "executor", "agent-util");
    await expect(asAgent.listGoals({ tenantId: mesh.tenantId })).rejects.toThrow(/may not call/);
    await issueCertificate({ certDir: mesh.certDir, name: "executor" });
    await (
      mesh.runtime.bus as unknown as {
        writeDeadLetter(
          s: string,
          seq: number,
          subj: string,
          p: Uint8Array,
          d: number,
          r: string,
        ): Promise<void>;
      }
    ).writeDeadLetter(
      `${mesh.prefix.toUpperCase()}_JOBS`,
      1,
      `${mesh.prefix}.jobs.util.echo`,
      new Uint8Array(),
      5,
      "test",
    );
    const services = mesh.runtime.http!.url;
    await waitFor(
      "certificate reload counted",
      async () =>
        (await scrape(services)).includes(
          'agentmesh_cert_reloads_total{name="executor",result="ok"}',
        ),
      10_000,
    );

    const scrapes = await Promise.all([
      scrape(services),
      scrape(gateway.http!),
      scrape(agentHealth),
    ]);
    const seen = new Map<string, Set<string>>();
    for (const text of scrapes) {
      for (const [name, samples] of parseScrape(text)) {
        const labels = seen.get(name) ?? new Set(["instance", "job"]);
        for (const s of samples) for (const l of Object.keys(s.labels)) labels.add(l);
        seen.set(name, labels);
      }
    }
    const ruleFiles = readdirSync("ops/prometheus").filter((f) => f.endsWith(".yaml"));
    const rules = ruleFiles.flatMap((f) =>
      (
        parse(readFileSync(join("ops/prometheus", f), "utf8")) as {
          groups: { rules: { record?: string; alert?: string; expr: string }[] }[];
        }
      ).groups.flatMap((g) => g.rules),
    );
    const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
    const queries: { where: string; expr: string }[] = [
      ...rules.map((r) => ({ where: `rule ${r.record ?? r.alert}`, expr: r.expr })),
      ...dashboardSpecs.flatMap((d) =>
        d.panels.flatMap((p) =>
          p.queries.map((q) => ({ where: `${d.uid}: ${p.title}`, expr: q.expr })),
        ),
      ),
      ...dashboardSpecs.flatMap((d) =>
        (d.variables ?? []).map((v) => ({
          where: `${d.uid}: $${v.name}`,
          expr: `sum by (${v.label}) (${v.metric})`,
        })),
      ),
    ];
    const problems: string[] = [];
    let checked = 0;
    for (const { where, expr } of queries) {
      const { metrics, clauseLabels } = promqlNames(expr);
      // A recorded constant (an SLO's objective) is the only query without a metric.
      if (metrics.size === 0 && !expr.startsWith("vector("))
        problems.push(`${where}: names no metric`);
      for (const [metric, labels] of metrics) {
        checked++;
        const known = recorded.has(metric) ? new Set(["slo"]) : seen.get(metric);
        if (!known) {
          problems.push(`${where}: ${metric} is on no /metrics`);
          continue;
        }
        for (const l of [...labels, ...clauseLabels]) {
          if (!known.has(l)) problems.push(`${where}: ${metric} has no label ${l}`);
        }
      }
    }
    expect(problems).toEqual([]);
    console.log(
      `ops: ${queries.length} queries name ${checked} metrics, all on the scrapes of 3 processes`,
    );
  });
});
