/**
 * An agent process paused longer than its lease (SIGSTOP for 20 s, lease 15 s by
 * default) is expired by the registry's sweeper; on SIGCONT it registers again by
 * itself, same id, and its `/readyz` says ready again. The real `agentmesh agent
 * util` process against the real registry over mTLS and PostgreSQL, on defaults.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needNats, needPostgres } from "../lib/testing/infra.js";
import { startTestMesh, type TestMesh } from "../lib/testing/mesh.js";
import { sleep, waitFor } from "../lib/testing/wait-for.js";
import { heartbeatIntervalMs } from "../sdk/agent/lease-lifecycle.js";

const pg = await needPostgres();
const nats = await needNats();
const leaseMs = 15_000; // the registry's default
const interval = heartbeatIntervalMs(leaseMs);

describe.skipIf(!pg || !nats)("an agent process paused longer than its lease", () => {
  let mesh: TestMesh;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    mesh = await startTestMesh({
      databaseUrl: pg!.url,
      natsUrl: nats!.url,
      components: ["registry"],
    });
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    await mesh?.stop();
  });

  it("is live and ready again right after it resumes", { timeout: 90_000 }, async () => {
    const { AGENTMESH_BUS_ACK_WAIT_MS: _, ...env } = mesh.childEnv();
    child = spawn(process.execPath, ["bin/agentmesh.js", "agent", "util"], {
      env: { ...process.env, ...env, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
    });
    await waitFor("agent ready", () => /ready:/.test(out) || child!.exitCode !== null);
    const m = /agent (\S+) ready:.*health (http:\/\/\S+?)\)/.exec(out);
    expect(m, out).not.toBeNull();
    const [, agentId, health] = m!;
    const state = async () => (await mesh.runtime.store.agents.find(agentId!))?.state;
    const readyz = () =>
      fetch(`${health}/readyz`)
        .then((r) => r.status)
        .catch(() => 0);
    expect(await state()).toBe("LIVE");
    expect(await readyz()).toBe(200);

    child.kill("SIGSTOP");
    const stoppedAt = Date.now();
    await waitFor("expired", async () => (await state()) === "EXPIRED", leaseMs + 10_000);
    await sleep(Math.max(0, leaseMs + 5_000 - (Date.now() - stoppedAt)));
    child.kill("SIGCONT");
    const resumedAt = Date.now();
    await waitFor(
      "live again",
      async () => (await state()) === "LIVE" && (await readyz()) === 200,
      interval + 10_000,
    );
    const tookMs = Date.now() - resumedAt;
    console.log(
      `pause: SIGSTOP ${resumedAt - stoppedAt} ms (lease ${leaseMs} ms); live and ready ${tookMs} ms after SIGCONT`,
    );
    expect(tookMs).toBeLessThanOrEqual(interval);
    expect((await mesh.runtime.store.agents.find(agentId!))?.id).toBe(agentId);

    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    expect(code).toBe(0);
  });
});
