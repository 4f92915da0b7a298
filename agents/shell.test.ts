import { describe, expect, it } from "vitest";
import { isAgentError } from "../sdk/agent/agent-error.js";
import { testSkillContext } from "../sdk/agent/test-context.js";
import { createShellAgent, type ShellAuditEvent } from "./shell.js";

function shell(options: Parameters<typeof createShellAgent>[0] = {}) {
  const audit: ShellAuditEvent[] = [];
  const agent = createShellAgent({
    allowCommands: ["echo", "sleep", "yes", "cat", "sh"],
    onAudit: (e) => audit.push(e),
    ...options,
  });
  return { exec: agent.skills["shell.exec"]!.handler, audit };
}

describe("shell agent", () => {
  it("runs an allowlisted command without a shell and audits it", async () => {
    const { exec, audit } = shell();
    const out = await exec({ command: "echo", args: ["$HOME", "; rm -rf /"] }, testSkillContext());
    expect(out).toMatchObject({ exitCode: 0, stdout: "$HOME ; rm -rf /\n", timedOut: false });
    expect(audit).toEqual([
      expect.objectContaining({ outcome: "ran", command: "echo", exitCode: 0 }),
    ]);
  });

  it("passes stdin and a clean environment", async () => {
    const { exec } = shell();
    const out = await exec({ command: "cat", stdin: "piped" }, testSkillContext());
    expect(out).toMatchObject({ stdout: "piped" });
  });

  it("refuses commands off the allowlist, and audits the refusal", async () => {
    const { exec, audit } = shell();
    const err = await Promise.resolve(
      exec({ command: "rm", args: ["-rf", "/tmp/x"] }, testSkillContext()),
    ).catch((e: unknown) => e);
    expect(isAgentError(err) && err.code === "PERMISSION_DENIED" && !err.retryable).toBe(true);
    expect(audit[0]).toMatchObject({ outcome: "denied", command: "rm" });
  });

  it("kills a command past its timeout and one whose output passes the cap", async () => {
    const { exec } = shell({ maxOutputBytes: 1_000 });
    const slow = await exec({ command: "sleep", args: ["5"], timeoutMs: 200 }, testSkillContext());
    expect(slow).toMatchObject({ timedOut: true, signal: "SIGKILL" });
    const loud = await exec({ command: "yes", timeoutMs: 5_000 }, testSkillContext());
    expect(loud).toMatchObject({ truncated: true, timedOut: false });
    expect((loud as { stdout: string }).stdout.length).toBe(1_000);
  });

  it("applies resource limits (CPU seconds)", async () => {
    const { exec } = shell({ cpuSeconds: 1 });
    const out = await exec(
      { command: "sh", args: ["-c", "while :; do :; done"], timeoutMs: 10_000 },
      testSkillContext(),
    );
    // SIGXCPU (or SIGKILL at the hard limit) well before the 10 s timeout.
    expect(out).toMatchObject({ timedOut: false });
    expect((out as { signal: string | null }).signal).toMatch(/SIGXCPU|SIGKILL/);
  });
});
