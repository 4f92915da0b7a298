/**
 * The shell agent (`agent-shell`): runs allowlisted commands — never through
 * a shell's parser — contained by `shell-sandbox.ts` (own working directory,
 * clean environment, `nobody` when running as root, new session and, where
 * the kernel allows, PID/user/network namespaces, resource limits including
 * RLIMIT_NPROC, the whole process tree killed at the deadline), and records
 * every call, allowed or refused, as an audit event.
 *
 * | capability | input | output |
 * | --- | --- | --- |
 * | `shell.exec` | `{ command, args? = [], stdin?, timeoutMs? }` | `{ exitCode, signal, stdout, stderr, truncated, timedOut, durationMs }` |
 *
 * The allowlist comes from `AGENTMESH_SHELL_ALLOW` (comma-separated command
 * names); by default it holds the commands of `shell-policy.ts`, each with an
 * argument policy that lets no flag read or write a file by name, run a
 * program or change the system, and confines path operands to the job's
 * working directory. A command allowlisted without a policy takes any
 * arguments (still contained), and the skill's description says so.
 *
 * @example
 * const agent = createShellAgent({ allowCommands: ["echo", "wc"], onAudit: (e) => audit.write(e) });
 */
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { nonRetryable } from "../sdk/agent/agent-error.js";
import { type AgentDefinition, defineAgent, type SkillContext } from "../sdk/agent/define-agent.js";
import { reportSandboxRefusal } from "./sandbox-refusal.js";
import { checkArgs, commandPolicies, defaultAllowCommands } from "./shell-policy.js";
import { runSandboxed, type SandboxLimits } from "./shell-sandbox.js";

export interface ShellAgentOptions {
  /** Command names that may run. Default: `AGENTMESH_SHELL_ALLOW`, else the commands with an argument policy. */
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
  /** Processes of the command's user (`ulimit -u`). Default 64. */
  processes?: number;
  /** Let commands use the network (no network namespace). Default false. */
  network?: boolean;
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
  if (list === undefined) return defaultAllowCommands;
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

export function createShellAgent(options: ShellAgentOptions = {}): AgentDefinition {
  const allow = new Set(options.allowCommands ?? allowCommandsFromEnv());
  const maxTimeoutMs = options.timeoutMs ?? 10_000;
  const maxOutput = options.maxOutputBytes ?? 64 * 1024;
  const searchPath = options.path ?? "/usr/local/bin:/usr/bin:/bin";
  const network = options.network ?? false;
  const limits: SandboxLimits = {
    cpuSeconds: options.cpuSeconds ?? 10,
    memoryMb: options.memoryMb ?? 1024,
    maxFileMb: options.maxFileMb ?? 10,
    openFiles: options.openFiles ?? 64,
    processes: options.processes ?? 64,
  };
  const unchecked = [...allow].filter((c) => !commandPolicies[c]);

  const audit = (ctx: SkillContext, e: Omit<ShellAuditEvent, "event" | keyof Ids>) => {
    const event: ShellAuditEvent = { event: "shell.exec", ...ids(ctx), ...e };
    ctx.log.info({ audit: true, ...event }, `audit shell.exec ${e.outcome}`);
    options.onAudit?.(event);
    if (e.outcome === "denied") {
      // The arguments stay out of the SIEM copy: they may carry the tenant's data.
      reportSandboxRefusal(ctx, "shell", {
        reason: `${e.command}: ${e.reason}`,
        code: "PERMISSION_DENIED",
        details: { command: e.command },
      });
    }
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
    labels: { sandbox: "namespaces,ulimit" },
    skills: {
      "shell.exec": {
        // Only allowlisted commands that read, in a fresh working directory.
        sideEffect: "read_only",
        description: `Runs one allowlisted command (${[...allow].join(", ") || "none allowed"}) with arguments and optional stdin, in a fresh working directory${unchecked.length ? `; ${unchecked.join(", ")} take any arguments (no argument policy)` : ""}.`,
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
          const refused = checkArgs(command, args);
          if (refused) {
            audit(ctx, { outcome: "denied", command, args, reason: refused });
            throw nonRetryable(`arguments refused: ${refused}`, {
              code: "PERMISSION_DENIED",
              details: { command },
            });
          }
          const file = resolve(command);
          if (!file) {
            audit(ctx, { outcome: "failed", command, args, reason: "not found" });
            throw nonRetryable(`command ${command} not found`, { code: "NOT_FOUND" });
          }
          const timeoutMs = Math.min(input.timeoutMs ?? maxTimeoutMs, maxTimeoutMs);
          const r = await runSandboxed({
            file,
            args,
            ...(input.stdin !== undefined ? { stdin: input.stdin } : {}),
            timeoutMs,
            maxOutputBytes: maxOutput,
            searchPath,
            limits,
            network,
            signal: ctx.signal,
          });
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

export const shellAgent = (): AgentDefinition => createShellAgent();
