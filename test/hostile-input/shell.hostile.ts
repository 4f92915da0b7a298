/**
 * Hostile shell.exec jobs through the real agent runtime on real JetStream.
 * The shipped agent (default allowlist and argument policies) refuses every
 * flag that reads a file by name — the `date -f .agentmesh/admin.key` finding
 * and its family — as a terminal PERMISSION_DENIED, once. An operator's
 * allowlist with policy-less commands (`sh`, `cat`) is still contained: root's
 * files are unreadable (the command runs as nobody), the agent's environment
 * is not passed on, processes that escape into their own session die with the
 * job, and a fork bomb ends at its process limit and deadline. No secret
 * appears in any output, and `/healthz` of the host answers within 100 ms.
 */

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createShellAgent } from "../../agents/shell.js";
import { needNats } from "../../lib/testing/infra.js";
import { type HostileCase, runOnBus } from "./agent-on-bus.js";

const nats = await needNats();
const secret = randomBytes(16).toString("hex");
const home = mkdtempSync(join(tmpdir(), "hostile-shell-"));
const key = join(home, ".agentmesh", "admin.key");
execFileSync("mkdir", ["-p", join(home, ".agentmesh")]);
writeFileSync(key, `${secret}\n`, { mode: 0o600 });
process.env.HOSTILE_TEST_SECRET = secret;
afterAll(() => {
  rmSync(home, { recursive: true, force: true });
  delete process.env.HOSTILE_TEST_SECRET;
});

const refused: HostileCase[] = [
  ["date", "-f", key],
  ["date", "-f", ".agentmesh/admin.key"],
  ["date", `--file=${key}`],
  ["date", "-r", key],
  ["date", "-s", "2001-01-01"],
  ["date", "0101000001"],
  ["date", "-d", `TZ="${key}" now`],
  ["sort", `--files0-from=${key}`],
  ["sort", "-o", join(home, "out")],
  ["sort", "--compress-program=sh"],
  ["sort", `--random-source=${key}`],
  ["wc", "--files0-from", key],
  ["head", key],
  ["head", "-n", "1", key],
  ["tail", key],
  ["tail", "-f", "x"],
  ["cat", "../../../../../../../../etc/passwd"],
  ["cat", "/proc/self/environ"],
  ["base64", key],
  ["sha256sum", key],
  ["uniq", "in", join(home, "out")],
  ["xargs", "cat"],
  ["sh", "-c", `cat ${key}`],
  ["env"],
].map(([command, ...args]) => ({
  name: `${command} ${args.join(" ")}`,
  input: { command: command!, args },
}));

describe.skipIf(!nats)("hostile shell.exec through the agent runtime on JetStream", () => {
  it("the shipped agent refuses every file-reading flag terminally, once", {
    timeout: 120_000,
  }, async () => {
    expect(process.env.AGENTMESH_SHELL_ALLOW, "the shipped default allowlist").toBeUndefined();
    const { outcomes, health } = await runOnBus({
      natsUrl: nats!.url,
      agent: createShellAgent(),
      capability: "shell.exec",
      cases: refused,
      batch: 4,
      timeoutMs: 10_000,
      warmUp: { command: "echo", args: ["warm"] },
    });
    for (const row of outcomes) {
      expect(row, row.name).toMatchObject({
        status: "FAILED",
        code: "PERMISSION_DENIED",
        retryable: false,
        calls: 1,
        finals: 1,
      });
      expect(JSON.stringify(row)).not.toContain(secret);
    }
    expect(health.failed).toBe(0);
    expect(health.maxMs, JSON.stringify(health)).toBeLessThan(100);
  });

  it("allowed commands see only their own empty directory", { timeout: 60_000 }, async () => {
    const { outcomes } = await runOnBus({
      natsUrl: nats!.url,
      agent: createShellAgent(),
      capability: "shell.exec",
      cases: [
        { name: "cat a relative key", input: { command: "cat", args: [".agentmesh/admin.key"] } },
        { name: "sort stdin", input: { command: "sort", args: ["-r"], stdin: "a\nb\n" } },
        { name: "date", input: { command: "date", args: ["-u", "+%Y"] } },
      ],
      batch: 3,
      timeoutMs: 10_000,
      warmUp: { command: "echo", args: ["warm"] },
    });
    expect(outcomes[0]).toMatchObject({ status: "SUCCEEDED" });
    expect(JSON.parse(outcomes[0]!.output!)).toMatchObject({
      exitCode: 1,
      stderr: expect.stringMatching(/No such file/),
    });
    expect(JSON.parse(outcomes[1]!.output!)).toMatchObject({ exitCode: 0, stdout: "b\na\n" });
    expect(JSON.parse(outcomes[2]!.output!)).toMatchObject({
      exitCode: 0,
      stdout: `${new Date().getUTCFullYear()}\n`,
    });
    for (const row of outcomes) expect(JSON.stringify(row)).not.toContain(secret);
  });

  it("contains policy-less commands an operator allowlists", { timeout: 120_000 }, async () => {
    const marker = `${40 + Math.floor(Math.random() * 50)}.${process.pid}`;
    const { outcomes, health } = await runOnBus({
      natsUrl: nats!.url,
      agent: createShellAgent({ allowCommands: ["sh", "cat"] }),
      capability: "shell.exec",
      cases: [
        { name: "read root's key", input: { command: "sh", args: ["-c", `cat ${key}`] } },
        { name: "environment", input: { command: "sh", args: ["-c", "env; id -u"] } },
        {
          name: "escape into a new session",
          input: {
            command: "sh",
            args: [
              "-c",
              `setsid sleep ${marker} & setsid sleep ${marker} >/dev/null 2>&1 & echo started`,
            ],
          },
        },
        {
          name: "fork bomb",
          input: { command: "sh", args: ["-c", "f() { f | f & }; f; sleep 20"], timeoutMs: 3_000 },
        },
      ],
      batch: 1,
      timeoutMs: 20_000,
      warmUp: { command: "echo", args: ["warm"] },
    });
    const [read, env, escaped, bomb] = outcomes.map((o) => ({
      ...o,
      out: JSON.parse(o.output ?? "{}"),
    }));
    expect(read!.out).toMatchObject({
      exitCode: 1,
      stderr: expect.stringMatching(/Permission denied/),
    });
    expect(env!.out.stdout).not.toMatch(/HOSTILE_TEST_SECRET|NATS_URL|DATABASE_URL/);
    if (process.getuid?.() === 0) expect(env!.out.stdout).toMatch(/^65534$/m);
    expect(escaped!.out).toMatchObject({ stdout: "started\n" });
    expect(escaped!.tookMs).toBeLessThan(5_000);
    // Nothing the job started outlives it.
    const ps = execFileSync("ps", ["-eo", "args"]).toString();
    expect(ps).not.toContain(`sleep ${marker}`);
    expect(bomb!.status).toBe("SUCCEEDED");
    expect(bomb!.tookMs).toBeLessThan(10_000);
    for (const row of outcomes) {
      expect(row.calls).toBe(1);
      expect(JSON.stringify(row)).not.toContain(secret);
    }
    expect(health.failed).toBe(0);
    expect(health.maxMs, JSON.stringify(health)).toBeLessThan(100);
  });
});
