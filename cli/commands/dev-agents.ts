/**
 * The built-in agents of `agentmesh dev`, each its own process
 * (`agentmesh agent <name>`) supervised by dev, so no agent failure — a crash,
 * an abort, a runaway job — can take down the process hosting the gateway and
 * services. A child that dies is started again after a backoff (0.5 s doubling
 * to 30 s, back to the start after a minute of running); its output reaches
 * dev's terminal line by line, prefixed with `[agent-<name>]`; stopping sends
 * SIGTERM (the agent drains) and SIGKILL after a grace period. Children run in
 * their own process group, so a terminal's Ctrl+C reaches dev only; where
 * util-linux `setpriv` is installed, a child also gets SIGTERM when dev itself
 * is killed.
 *
 * @example
 * const data = superviseAgent({ name: "data", env: { NATS_URL, AGENTMESH_REGISTRY_ADDR } });
 * const { agentId, capabilities } = await data.ready;
 * await data.stop();
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { packagePath } from "../../lib/config/package-root.js";
import { firstExecutable } from "../../lib/process/executable.js";

export interface SupervisedAgent {
  name: string;
  /** The first start's ready line: the agent consumes its capabilities. */
  readonly ready: Promise<AgentReady>;
  /** Processes started so far (1 + restarts). */
  readonly starts: number;
  /** The current process id, if one runs. */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

export interface AgentReady {
  agentId: string;
  capabilities: string[];
  /** The agent process's own health endpoint, when it prints one. */
  health?: string;
}

/** Reads `agent <id> ready: <capabilities>[ (health <url>)]`, what `agentmesh agent` prints. */
export function parseReadyLine(line: string): AgentReady | undefined {
  const m = /^agent (\S+) ready: (.*?)(?: \(health (\S+)\))?$/.exec(line);
  if (!m) return undefined;
  return {
    agentId: m[1]!,
    capabilities: m[2]!.split(", ").filter(Boolean),
    ...(m[3] ? { health: m[3] } : {}),
  };
}

export interface SuperviseOptions {
  name: string;
  /** Environment of the child, added to dev's own. */
  env: Record<string, string>;
  /** Where prefixed output lines go. Default dev's stdout/stderr. */
  write?: (line: string, stream: "stdout" | "stderr") => void;
  /** First restart delay. Default 500 ms. */
  backoffMs?: number;
  /** How long a stopped agent may drain before SIGKILL. Default 5 s. */
  graceMs?: number;
  /** How long the first start may take. Default 60 s. */
  startTimeoutMs?: number;
}

/** Restart delay after `failures` quick deaths in a row. */
export function restartDelay(failures: number, firstMs = 500, maxMs = 30_000): number {
  return Math.min(maxMs, firstMs * 2 ** Math.max(0, failures - 1));
}

/** A run this long counts as healthy: the next death starts the backoff over. */
const healthyRunMs = 60_000;

const setpriv = firstExecutable("/usr/bin/setpriv", "/bin/setpriv");

export function superviseAgent(options: SuperviseOptions): SupervisedAgent {
  const { name } = options;
  const prefix = `[agent-${name}]`;
  const write =
    options.write ??
    ((line: string, stream: "stdout" | "stderr") =>
      (stream === "stdout" ? process.stdout : process.stderr).write(`${line}\n`));
  const graceMs = options.graceMs ?? 5_000;
  let child: ChildProcess | undefined;
  let stopping = false;
  let starts = 0;
  let failures = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  let resolveReady!: (r: AgentReady) => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<AgentReady>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => undefined);
  const startTimer = setTimeout(
    () => rejectReady(new Error(`agent ${name} did not get ready`)),
    options.startTimeoutMs ?? 60_000,
  );

  const start = () => {
    starts++;
    const startedAt = Date.now();
    const argv = [packagePath("bin", "agentmesh.js"), "agent", name];
    const [command, ...args] = setpriv
      ? [setpriv, "--pdeathsig", "TERM", "--", process.execPath, ...argv]
      : [process.execPath, ...argv];
    const proc = spawn(command!, args, {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: Ctrl+C reaches dev alone, which stops the agents in order.
      detached: true,
    });
    child = proc;
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      const r = parseReadyLine(line);
      if (r) {
        clearTimeout(startTimer);
        resolveReady(r);
        // The first ready line goes in dev's summary; later ones say a restart worked.
        if (starts === 1) return;
      }
      write(`${prefix} ${line}`, "stdout");
    });
    createInterface({ input: proc.stderr! }).on("line", (line) =>
      write(`${prefix} ${line}`, "stderr"),
    );
    proc.on("error", (err) => write(`${prefix} could not start: ${err.message}`, "stderr"));
    proc.on("exit", (code, signal) => {
      if (child === proc) child = undefined;
      if (stopping) return;
      failures = Date.now() - startedAt > healthyRunMs ? 1 : failures + 1;
      const delay = restartDelay(failures, options.backoffMs);
      write(
        `${prefix} exited (${signal ?? `code ${code}`}); restarting in ${(delay / 1000).toFixed(1)} s`,
        "stderr",
      );
      restartTimer = setTimeout(start, delay);
    });
  };
  start();

  return {
    name,
    ready,
    get starts() {
      return starts;
    },
    get pid() {
      return child?.pid;
    },
    async stop() {
      stopping = true;
      clearTimeout(restartTimer);
      clearTimeout(startTimer);
      rejectReady(new Error(`agent ${name} stopped`));
      const proc = child;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      proc.kill("SIGTERM");
      const kill = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(kill);
    },
  };
}
