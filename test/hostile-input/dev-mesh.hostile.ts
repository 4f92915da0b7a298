/**
 * The finding end to end: `agentmesh dev` (what `npm start` runs) on real
 * NATS and PostgreSQL, a tenant playbook whose `data.transform` expression
 * comes from the goal input, and goals whose expressions abort V8 or
 * backtrack for minutes. Each goal fails with a clear terminal error within
 * its deadline, its step ran once, and dev's `/healthz` answered within
 * 100 ms throughout. Then the data agent's process is SIGKILLed: dev starts
 * it again and goals succeed; Ctrl+C stops dev and every agent process.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GoalStatus } from "../../gen/agentmesh/v1/common_pb.js";
import { busNames } from "../../lib/bus/bus-names.js";
import { connectNats } from "../../lib/bus/jetstream-bus.js";
import { waitFor } from "../../lib/bus/job-bus.contract.js";
import { openStore } from "../../lib/store/store.js";
import { freePort } from "../../lib/testing/free-port.js";
import { eventsOf, kinds, watchToEnd } from "../../lib/testing/goals.js";
import { needNats, needPostgres } from "../../lib/testing/infra.js";
import { createClient, type MeshClient } from "../../sdk/client/create-client.js";
import { type HealthProbe, startHealthProbe } from "./health-probe.js";

const pg = await needPostgres();
const nats = await needNats();

describe.skipIf(!pg || !nats)("agentmesh dev survives hostile goals", () => {
  const home = mkdtempSync(join(tmpdir(), "hostile-dev-"));
  const run = randomBytes(4).toString("hex");
  let dev: ChildProcess;
  let out = "";
  let mesh: MeshClient;
  let probe: HealthProbe;

  const agentPid = (name: string) => {
    const m = new RegExp(`agent\\s+${name}\\s.*\\(pid (\\d+)`).exec(out);
    return m ? Number(m[1]) : undefined;
  };

  beforeAll(async () => {
    const ports = Object.fromEntries(
      await Promise.all(
        ["REGISTRY", "PLANNER", "EXECUTOR", "LEARNING", "GATEWAY", "METRICS"].map(
          async (n) => [`AGENTMESH_${n}_PORT`, String(await freePort())] as const,
        ),
      ),
    );
    dev = spawn(process.execPath, ["bin/agentmesh.js", "dev"], {
      env: {
        ...process.env,
        AGENTMESH_HOME: home,
        DATABASE_URL: pg!.url,
        AGENTMESH_DB_SCHEMA: `hostile_dev_${run}`,
        NATS_URL: nats!.url,
        AGENTMESH_BUS_PREFIX: `hostiledev${run}`,
        ...ports,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const tap = (c: Buffer) => {
      out += c.toString();
    };
    dev.stdout!.on("data", tap);
    dev.stderr!.on("data", tap);
    await waitFor(
      () => /Stop with Ctrl\+C/.test(out) || dev.exitCode !== null,
      120_000,
      "agentmesh dev to get ready",
    );
    expect(dev.exitCode, out).toBeNull();
    const gateway = /gateway\s+(http:\/\/\S+)/.exec(out)![1]!;
    const metrics = /metrics\s+(http:\/\/\S+)\/metrics/.exec(out)![1]!;
    const apiKey = readFileSync(join(home, "admin.key"), "utf8").trim();
    mesh = createClient({ baseUrl: gateway, apiKey });
    await mesh.planner.putPlaybook({
      playbook: {
        goalKind: "transform",
        description: "One data.transform step on an expression from the goal input.",
        strategies: [
          {
            name: "only",
            steps: [
              {
                stepId: "t",
                capability: "data.transform",
                // Playbook templates, filled in by the planner.
                // biome-ignore lint/suspicious/noTemplateCurlyInString: a playbook template, not JavaScript
                input: { expression: "${input.expression}", data: "${input.data}" },
              },
            ],
          },
        ],
      },
    });
    // A first goal warms the mesh up (lazy loading on the first request), then the probe starts.
    const warm = await goal("$sum(x)", { x: [1] });
    expect(eventsOf(warm.events, "finished")[0]!.status).toBe(GoalStatus.SUCCEEDED);
    probe = await startHealthProbe(`${metrics}/healthz`);
  }, 180_000);

  afterAll(async () => {
    await probe?.stop();
    if (dev && dev.exitCode === null) {
      dev.kill("SIGKILL");
      await once(dev, "exit");
    }
    rmSync(home, { recursive: true, force: true });
    // The run's streams and schema.
    const nc = await connectNats(nats!.url);
    const jsm = await jetstreamManager(nc);
    for (const stream of Object.values(busNames(`hostiledev${run}`).streams)) {
      await jsm.streams.delete(stream).catch(() => false);
    }
    await nc.close();
    const store = await openStore({ databaseUrl: pg!.url, migrate: false });
    await store.orm.em.fork().execute(`drop schema if exists "hostile_dev_${run}" cascade`);
    await store.close();
  });

  async function goal(expression: string, data: unknown = {}) {
    const started = Date.now();
    const { goal } = await mesh.executor.submitGoal({
      kind: "transform",
      input: { expression, data: data as never },
      idempotencyKey: randomBytes(8).toString("hex"),
    });
    const events = await watchToEnd(mesh.executor, "", goal!.goalId);
    return { events, tookMs: Date.now() - started };
  }

  it("fails each hostile goal terminally, once, with the mesh responsive", {
    timeout: 120_000,
  }, async () => {
    const dataPid = agentPid("data");
    expect(dataPid, out).toBeDefined();
    for (const [expression, data] of [
      ['$length($pad("", 200000000))', {}],
      ["$match(s, /(a+)+$/)", { s: `${"a".repeat(30)}!` }],
    ] as const) {
      const { events, tookMs } = await goal(expression, data);
      const finished = eventsOf(events, "finished")[0]!;
      expect(finished.status, expression).toBe(GoalStatus.FAILED);
      expect(JSON.stringify(finished.error)).toMatch(/RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED/);
      expect(
        kinds(events).filter((k) => k === "stepDispatched"),
        expression,
      ).toHaveLength(1);
      expect(tookMs).toBeLessThan(30_000);
    }
    // The agent process itself survived: no restart was needed.
    expect(agentPid("data")).toBe(dataPid);
    expect(out).not.toMatch(/\[agent-data\] exited/);
    const health = await probe.report();
    console.log("healthz of agentmesh dev during the hostile goals:", JSON.stringify(health));
    expect(health.failed).toBe(0);
    expect(health.maxMs, JSON.stringify(health)).toBeLessThan(100);
  });

  it("starts a killed agent process again", { timeout: 120_000 }, async () => {
    process.kill(agentPid("data")!, "SIGKILL");
    await waitFor(
      () => /\[agent-data\] exited \(SIGKILL\); restarting/.test(out),
      10_000,
      "restart",
    );
    await waitFor(
      () => {
        try {
          return (
            readFileSync(`/proc/${dev.pid}/task/${dev.pid}/children`, "utf8").trim().split(" ")
              .length >= 3
          );
        } catch {
          return false;
        }
      },
      30_000,
      "a new data agent process",
    );
    // Jobs flow again once the new process consumes.
    let finished: GoalStatus | undefined;
    for (let i = 0; i < 10 && finished !== GoalStatus.SUCCEEDED; i++) {
      const { events } = await goal("$sum(x)", { x: [1, 2] });
      finished = eventsOf(events, "finished")[0]!.status;
    }
    expect(finished).toBe(GoalStatus.SUCCEEDED);
    const health = await probe.report();
    expect(health.failed).toBe(0);
  });

  it("stops every agent process on Ctrl+C", { timeout: 60_000 }, async () => {
    const children = readFileSync(`/proc/${dev.pid}/task/${dev.pid}/children`, "utf8")
      .trim()
      .split(" ")
      .filter(Boolean)
      .map(Number);
    expect(children.length).toBeGreaterThanOrEqual(3);
    await probe.stop();
    dev.kill("SIGINT");
    const [code] = (await once(dev, "exit")) as [number | null];
    expect(code, out).toBe(0);
    // Gone, or a zombie waiting for the container's init to reap it.
    const running = (pid: number) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z"
          ? readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ")
          : undefined;
      } catch {
        return undefined;
      }
    };
    for (const pid of children) expect(running(pid), `process ${pid}`).toBeUndefined();
    const shutdown = out.slice(out.indexOf("agentmesh dev: stopping"));
    expect(shutdown).not.toMatch(/restarting/);
  });
});
