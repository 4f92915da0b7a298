/**
 * The shell agent (`agent-shell`): runs allowlisted commands in a child
 * process — never through a shell's parser — with a timeout, an output cap
 * and resource limits (CPU time, address space, file size, open files), and
 * records every call, allowed or refused, as an audit event.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `shell.exec` | `{ command, args? = [], stdin?, timeoutMs? }` | `{ exitCode, signal, stdout, stderr, truncated, timedOut, durationMs }` |
 *
 * The allowlist comes from `AGENTMESH_SHELL_ALLOW` (comma-separated command
 * names); default `echo,date,uname`. Commands are looked up on a fixed PATH
 * and run with an empty environment apart from PATH, LANG and HOME.
 *
 * @example
 * const agent = createShellAgent({ allowCommands: ["echo", "wc"], onAudit: (e) => audit.write(e) });
 */
import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nonRetryable } from "../sdk/agent/agent-error.js";
import { type AgentDefinition, defineAgent, type SkillContext } from "../sdk/agent/define-agent.js";

export interface ShellAgentOptions {
  /** Command names that may run. Default: `AGENTMESH_SHELL_ALLOW`, else `echo,date,uname`. */
  allowCommands?: string[];
  /** Default and largest timeout. Default 10 s. */
  timeoutMs?: number;
  /** Largest stdout + stderr kept; the process is killed past it. Default 64 KiB. */
  maxOutputBytes?: number;
  /** CPU seconds (`ulimit -t`). Default 10. */
  cpuSeconds?: number;
  /** Address space in MiB (`ulimit -v`). Default 1024. */
  memoryMb?: number;
  /** Largest file the command may write, in MiB (`ulimit -f`). Default 10. */
  maxFileMb?: number;
  /** Open file descriptors (`ulimit -n`). Default 64. */
  openFiles?: number;
  /** Working directory. Default the OS temp directory. */
  cwd?: string;
  /** Where commands are looked up. Default `/usr/local/bin:/usr/bin:/bin`. */
  path?: string;
  /** Receives every audit event (they are also logged with `audit: true`). */
  onAudit?: (event: ShellAuditEvent) => void;
}

export interface ShellAuditEvent {
  event: "shell.exec";
  outcome: "ran" | "denied" | "failed";
  command: string;
  args: string[];
  attemptId: string;
  goalId: string;
  tenantId: string;
  stepId: string;
  exitCode?: number | null;
  signal?: string | null;
  timedOut?: boolean;
  truncated?: boolean;
  durationMs?: number;
  reason?: string;
}

export function allowCommandsFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = env.AGENTMESH_SHELL_ALLOW;
  if (list === undefined) return ["echo", "date", "uname"];
  return list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

interface ExecInput {
  command: string;
  args?: string[];
  stdin?: string;
  timeoutMs?: number;
}

// Applies the limits, then replaces itself with the command; arguments pass as
// positional parameters, so nothing the job sends is ever parsed by the shell.
const limitScript =
  'ulimit -t "$1" && ulimit -v "$2" && ulimit -f "$3" && ulimit -n "$4" && shift 4 && exec "$@"';

export function createShellAgent(options: ShellAgentOptions = {}): AgentDefinition {
  const allow = new Set(options.allowCommands ?? allowCommandsFromEnv());
  const maxTimeoutMs = options.timeoutMs ?? 10_000;
  const maxOutput = options.maxOutputBytes ?? 64 * 1024;
  const searchPath = options.path ?? "/usr/local/bin:/usr/bin:/bin";
  const cwd = options.cwd ?? tmpdir();
  const limits = [
    String(options.cpuSeconds ?? 10),
    String((options.memoryMb ?? 1024) * 1024),
    // sh counts file size in 512-byte blocks.
    String((options.maxFileMb ?? 10) * 2048),
    String(options.openFiles ?? 64),
  ];

  const audit = (ctx: SkillContext, e: Omit<ShellAuditEvent, "event" | keyof Ids>) => {
    const event: ShellAuditEvent = { event: "shell.exec", ...ids(ctx), ...e };
    ctx.log.info({ audit: true, ...event }, `audit shell.exec ${e.outcome}`);
    options.onAudit?.(event);
  };

  const resolve = (command: string): string | undefined => {
    for (const dir of searchPath.split(":")) {
      const file = join(dir, command);
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {}
    }
    return undefined;
  };

  return defineAgent({
    name: "shell",
    version: "1.0.0",
    owner: "agentmesh",
    description:
      "Runs allowlisted commands in a resource-limited child process; every call audited.",
    labels: { sandbox: "ulimit" },
    skills: {
      "shell.exec": {
        description: `Runs one allowlisted command (${[...allow].join(", ") || "none allowed"}) with arguments and optional stdin.`,
        inputSchema: {
          type: "object",
          properties: {
            command: { type: "string", pattern: "^[A-Za-z0-9._+-]+$", maxLength: 128 },
            args: { type: "array", items: { type: "string", maxLength: 4_096 }, maxItems: 64 },
            stdin: { type: "string", maxLength: 1 << 20 },
            timeoutMs: { type: "integer", minimum: 1, maximum: 600_000 },
          },
          required: ["command"],
          additionalProperties: false,
        },
        tags: ["sandbox"],
        handler: async (input: ExecInput, ctx) => {
          const args = input.args ?? [];
          const { command } = input;
          if (!allow.has(command)) {
            audit(ctx, { outcome: "denied", command, args, reason: "not on the allowlist" });
            throw nonRetryable(`command ${command} is not on the allowlist`, {
              code: "PERMISSION_DENIED",
            });
          }
          const file = resolve(command);
          if (!file) {
            audit(ctx, { outcome: "failed", command, args, reason: "not found" });
            throw nonRetryable(`command ${command} not found`, { code: "NOT_FOUND" });
          }
          const timeoutMs = Math.min(input.timeoutMs ?? maxTimeoutMs, maxTimeoutMs);
          const r = await run(
            file,
            args,
            input.stdin,
            timeoutMs,
            maxOutput,
            cwd,
            searchPath,
            limits,
            ctx.signal,
          );
          audit(ctx, {
            outcome: "ran",
            command,
            args,
            exitCode: r.exitCode,
            signal: r.signal,
            timedOut: r.timedOut,
            truncated: r.truncated,
            durationMs: r.durationMs,
          });
          return r;
        },
      },
    },
  });
}

type Ids = Pick<ShellAuditEvent, "attemptId" | "goalId" | "tenantId" | "stepId">;

function ids(ctx: SkillContext): Ids {
  return {
    attemptId: ctx.attemptId,
    goalId: ctx.goalId,
    tenantId: ctx.tenantId,
    stepId: ctx.stepId,
  };
}

interface RunResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

function run(
  file: string,
  args: string[],
  stdin: string | undefined,
  timeoutMs: number,
  maxOutput: number,
  cwd: string,
  searchPath: string,
  limits: string[],
  signal: AbortSignal,
): Promise<RunResult> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      "/bin/sh",
      ["-c", limitScript, "agentmesh-shell", ...limits, file, ...args],
      {
        cwd,
        env: { PATH: searchPath, LANG: "C.UTF-8", HOME: cwd },
        stdio: ["pipe", "pipe", "pipe"],
        // Own process group, so a timeout kills the command and anything it started.
        detached: true,
      },
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let timedOut = false;
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {}
    };
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      const room = maxOutput - size;
      if (room <= 0) return;
      if (chunk.length > room) {
        into.push(chunk.subarray(0, room));
        size = maxOutput;
        truncated = true;
        killGroup();
        return;
      }
      into.push(chunk);
      size += chunk.length;
    };
    child.stdout.on("data", collect(out));
    child.stderr.on("data", collect(err));
    child.stdin.on("error", () => {}); // the command may exit without reading stdin
    child.stdin.end(stdin ?? "");
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const onAbort = () => killGroup();
    signal.addEventListener("abort", onAbort, { once: true });
    child.on("error", (e) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
    child.on("close", (code, sig) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve({
        exitCode: code,
        signal: sig,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        truncated,
        timedOut,
        durationMs: Date.now() - start,
      });
    });
  });
}

export const shellAgent = (): AgentDefinition => createShellAgent();
