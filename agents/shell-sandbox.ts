/**
 * Runs one command for the shell agent, contained:
 * - in a fresh working directory of its own (mode 0700), removed afterwards;
 * - with a clean environment (PATH, LANG, HOME = that directory);
 * - as `nobody` when the agent runs as root, so root's files stay unreadable
 *   and RLIMIT_NPROC applies;
 * - in a new session, and where the kernel allows it in new user, PID and
 *   network namespaces (`unshare --user --pid --net --fork --kill-child`):
 *   when the command ends or is killed, the kernel kills everything it
 *   started, even processes that escaped into sessions of their own, and it
 *   has no network;
 * - under resource limits set by `prlimit` (util-linux): CPU seconds, address
 *   space, file size, open files, processes (`ulimit` in `sh` without
 *   prlimit, which cannot limit processes portably);
 * - and, for kernels without those namespaces, a sweep that kills every
 *   process still carrying the job's marker in its environment.
 * Arguments pass straight to the command, never through a shell's parser.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, chown, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { constants as os, tmpdir } from "node:os";
import { join } from "node:path";
import { firstExecutable } from "../lib/process/executable.js";

export interface SandboxLimits {
  cpuSeconds: number;
  memoryMb: number;
  maxFileMb: number;
  openFiles: number;
  /** Processes the job's user may have (RLIMIT_NPROC). */
  processes: number;
}

export interface SandboxRun {
  /** Absolute path of the command. */
  file: string;
  args: readonly string[];
  stdin?: string;
  timeoutMs: number;
  /** Largest stdout + stderr kept; the command is killed past it. */
  maxOutputBytes: number;
  searchPath: string;
  limits: SandboxLimits;
  /** Allow network access (no network namespace). */
  network: boolean;
  signal: AbortSignal;
}

export interface SandboxResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

/** How the sandbox isolates commands on this machine, for the agent's labels and logs. */
export interface Isolation {
  /** Commands run as this user and group (nobody when the agent is root), else as the agent. */
  user?: { uid: number; gid: number };
  /** Whether new user, PID and network namespaces are available. */
  namespaces: boolean;
  /** prlimit's path, when installed (needed for RLIMIT_NPROC). */
  prlimit?: string;
}

// Runs the command (its arguments stay positional parameters, never parsed) and reports its
// status on fd 3: unshare does not pass on a child's death by signal, so the status says it.
const runScript = '"$@" 3>&-; echo "$?" >&3';
// Without prlimit: applies the limits first.
const limitScript = `ulimit -t "$1" && ulimit -v "$2" && ulimit -f "$3" && ulimit -n "$4" && shift 4 && ${runScript}`;

let isolation: Promise<Isolation> | undefined;

/** Probed once per process: who commands run as, and whether namespaces work. */
export function detectIsolation(): Promise<Isolation> {
  isolation ??= (async () => {
    const user = process.getuid?.() === 0 ? await nobody() : undefined;
    const namespaces = await new Promise<boolean>((resolve) => {
      const probe = spawn("unshare", [...unshareArgs(false), "/bin/true"], {
        stdio: "ignore",
        ...(user ?? {}),
      });
      probe.on("error", () => resolve(false));
      probe.on("exit", (code) => resolve(code === 0));
    });
    const prlimit = firstExecutable("/usr/bin/prlimit", "/bin/prlimit");
    return { ...(user ? { user } : {}), namespaces, ...(prlimit ? { prlimit } : {}) };
  })();
  return isolation;
}

function unshareArgs(network: boolean): string[] {
  return ["--user", "--pid", ...(network ? [] : ["--net"]), "--fork", "--kill-child", "--"];
}

async function nobody(): Promise<{ uid: number; gid: number }> {
  try {
    const line = (await readFile("/etc/passwd", "utf8"))
      .split("\n")
      .find((l) => l.startsWith("nobody:"));
    const [, , uid, gid] = line?.split(":") ?? [];
    if (uid && gid) return { uid: Number(uid), gid: Number(gid) };
  } catch {
    // no passwd file: the conventional ids
  }
  return { uid: 65534, gid: 65534 };
}

export async function runSandboxed(run: SandboxRun): Promise<SandboxResult> {
  const iso = await detectIsolation();
  const workDir = await mkdtemp(join(tmpdir(), "agentmesh-shell-"));
  try {
    await chmod(workDir, 0o700);
    if (iso.user) await chown(workDir, iso.user.uid, iso.user.gid);
    return await execute(run, iso, workDir);
  } finally {
    await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

function execute(run: SandboxRun, iso: Isolation, workDir: string): Promise<SandboxResult> {
  const start = Date.now();
  const marker = randomBytes(12).toString("hex");
  const { limits } = run;
  const limited = iso.prlimit
    ? [
        iso.prlimit,
        `--cpu=${limits.cpuSeconds}`,
        `--as=${limits.memoryMb * 1024 * 1024}`,
        `--fsize=${limits.maxFileMb * 1024 * 1024}`,
        `--nofile=${limits.openFiles}`,
        `--nproc=${limits.processes}`,
        "--",
        "/bin/sh",
        "-c",
        runScript,
        "agentmesh-shell",
        run.file,
        ...run.args,
      ]
    : [
        "/bin/sh",
        "-c",
        limitScript,
        "agentmesh-shell",
        String(limits.cpuSeconds),
        String(limits.memoryMb * 1024),
        // sh counts file size in 512-byte blocks.
        String(limits.maxFileMb * 2048),
        String(limits.openFiles),
        run.file,
        ...run.args,
      ];
  const [command, ...argv] = iso.namespaces
    ? ["unshare", ...unshareArgs(run.network), ...limited]
    : limited;
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(command!, argv, {
      cwd: workDir,
      env: { PATH: run.searchPath, LANG: "C.UTF-8", HOME: workDir, [markerName]: marker },
      stdio: ["pipe", "pipe", "pipe", "pipe"],
      // A new session and process group (setsid).
      detached: true,
      ...(iso.user ?? {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let truncated = false;
    let timedOut = false;
    const killAll = () => {
      try {
        if (child.pid) process.kill(-child.pid, "SIGKILL");
      } catch {}
      void killMarked(marker);
    };
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      const room = run.maxOutputBytes - size;
      if (room <= 0) return;
      if (chunk.length > room) {
        into.push(chunk.subarray(0, room));
        size = run.maxOutputBytes;
        truncated = true;
        killAll();
        return;
      }
      into.push(chunk);
      size += chunk.length;
    };
    let status = "";
    (child.stdio[3] as NodeJS.ReadableStream).on("data", (c: Buffer) => {
      status += c.toString();
    });
    child.stdout!.on("data", collect(out));
    child.stderr!.on("data", collect(err));
    child.stdin!.on("error", () => {}); // the command may exit without reading stdin
    child.stdin!.end(run.stdin ?? "");
    const timer = setTimeout(() => {
      timedOut = true;
      killAll();
    }, run.timeoutMs);
    const onAbort = () => killAll();
    run.signal.addEventListener("abort", onAbort, { once: true });
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let closeTimer: NodeJS.Timeout | undefined;
    let finished = false;
    const done = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(closeTimer);
      run.signal.removeEventListener("abort", onAbort);
      resolve({
        ...outcome(status, exit),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        truncated,
        timedOut,
        durationMs: Date.now() - start,
      });
    };
    child.on("error", (e) => {
      clearTimeout(timer);
      run.signal.removeEventListener("abort", onAbort);
      reject(e);
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      // Whatever the command left behind dies with it; a straggler holding the pipes
      // must not hold the job: give the output a moment to drain, then stop reading.
      killAll();
      closeTimer = setTimeout(() => {
        for (const stream of child.stdio) stream?.destroy();
        done();
      }, 1_000);
    });
    child.on("close", () => {
      if (exit) done();
    });
  });
}

/** The command's own status from the wrapper (`128 + n` is death by signal n), else the sandbox's. */
function outcome(
  status: string,
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined,
): { exitCode: number | null; signal: string | null } {
  const n = Number.parseInt(status.trim(), 10);
  if (!Number.isInteger(n)) return { exitCode: exit?.code ?? null, signal: exit?.signal ?? null };
  if (n <= 128) return { exitCode: n, signal: null };
  const name = Object.entries(os.signals).find(([, v]) => v === n - 128)?.[0];
  return { exitCode: null, signal: name ?? `signal ${n - 128}` };
}

const markerName = "AGENTMESH_SHELL_JOB";

/** Kills every process whose environment carries the job's marker (those we may read). */
async function killMarked(marker: string): Promise<number> {
  const needle = `${markerName}=${marker}\0`;
  let killed = 0;
  for (const entry of await readdir("/proc").catch(() => [] as string[])) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const environ = await readFile(`/proc/${pid}/environ`, "latin1");
      if (!environ.includes(needle)) continue;
      process.kill(pid, "SIGKILL");
      killed++;
    } catch {
      // gone, or not ours to read
    }
  }
  return killed;
}
