/**
 * JSONata evaluated outside the agent's process: a warm pool of small Node
 * child processes, each with its own heap limit. The parent keeps the wall
 * clock: an evaluation still running at its limit (a backtracking regex holds
 * the child's thread, so JSONata's own timeout cannot fire) is SIGKILLed, and
 * a child that dies (V8 aborts the whole process on some allocation failures,
 * e.g. `$pad("", 200000000)`, even inside a worker thread) costs only itself.
 * Every such end is a non-retryable `AgentError` with a clear code, so the bus
 * never redelivers the job; the pool replaces the lost process.
 *
 * @example
 * const sandbox = new JsonataSandbox();
 * await sandbox.evaluate({ expression: "$sum(x)", data: { x: [1, 2] }, ...limits }); // 3
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import { availableParallelism, setPriority } from "node:os";
import { firstExecutable } from "../lib/process/executable.js";
import { AgentError, nonRetryable } from "../sdk/agent/agent-error.js";
import { jsonataChildSource } from "./jsonata-child.js";

export interface JsonataLimits {
  /** Wall-clock limit of one evaluation; the process is killed shortly after. */
  timeLimitMs: number;
  /** Deepest expression recursion. */
  maxDepth: number;
  /** Longest sequence an expression may build. */
  maxSequence: number;
  /** Largest result, as JSON bytes. */
  maxBytes: number;
}

export interface EvaluateRequest extends JsonataLimits {
  expression: string;
  data: unknown;
  bindings: Record<string, unknown>;
  /** Aborts the evaluation (the step was cancelled or timed out). */
  signal?: AbortSignal;
}

export interface JsonataSandboxOptions {
  /** Heap (V8 old space) of each process, in MiB. Default 128. */
  memoryMb?: number;
  /** Processes evaluating at once; more requests wait. Default min(4, CPUs). */
  size?: number;
}

/** How long past its time limit an evaluation may run before its process is killed. */
const killGraceMs = 100;

interface Slot {
  child: ChildProcess;
  ready: Promise<void>;
  /** Whether it answered at start-up (a process that never does is not replaced, so no spawn loop). */
  started: boolean;
  /** The start of the child's stderr (V8's fatal error line comes before a long native trace). */
  stderrHead: string;
  /** The evaluation in flight, settled by a reply or the child's exit. */
  onReply?: (reply: ChildReply) => void;
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

interface ChildFailure {
  kind: "compile" | "evaluate" | "size";
  name?: string;
  code?: string;
  message?: string;
  position?: number;
  token?: string;
  value?: unknown;
  bytes?: number;
}

type ChildReply = { id: number; json: string } | { id: number; error: ChildFailure };

let nextId = 1;

const setpriv = firstExecutable("/usr/bin/setpriv", "/bin/setpriv");

/**
 * Every sandbox process of this process. A child blocked in a regex never
 * reads the IPC channel's close, so the parent kills them all on its way out.
 */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const c of liveChildren) c.kill("SIGKILL");
    });
  }
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
}

export class JsonataSandbox {
  readonly memoryMb: number;
  readonly size: number;
  private readonly jsonataPath = createRequire(import.meta.url).resolve("jsonata");
  private readonly idle: Slot[] = [];
  private readonly all = new Set<Slot>();
  private readonly waiting: ((slot: Slot) => void)[] = [];
  private closed = false;

  constructor(options: JsonataSandboxOptions = {}) {
    this.memoryMb = options.memoryMb ?? 128;
    this.size = Math.max(1, options.size ?? Math.min(4, availableParallelism()));
  }

  /** Starts one process ahead of the first evaluation. */
  warm(): void {
    if (this.all.size === 0 && !this.closed) this.idle.push(this.spawn());
  }

  /** Evaluates `expression`; resolves to the result as plain JSON data. */
  async evaluate(request: EvaluateRequest): Promise<unknown> {
    if (this.closed) throw new AgentError("the JSONata sandbox is closed", { code: "UNAVAILABLE" });
    const slot = await this.acquire();
    setRef(slot.child, true);
    try {
      await slot.ready;
    } catch (err) {
      this.discard(slot);
      throw new AgentError(`the JSONata sandbox did not start: ${(err as Error).message}`, {
        code: "UNAVAILABLE",
      });
    }
    return this.run(slot, request);
  }

  /** Kills every process. */
  async close(): Promise<void> {
    this.closed = true;
    for (const slot of [...this.all]) this.discard(slot);
  }

  private run(slot: Slot, request: EvaluateRequest): Promise<unknown> {
    const { signal, expression, data, bindings, ...limits } = request;
    const id = nextId++;
    return new Promise<unknown>((resolve, reject) => {
      let settled = false;
      const finish = (outcome: () => unknown, keep: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        slot.onReply = undefined;
        slot.onExit = undefined;
        if (keep) this.release(slot);
        else this.discard(slot);
        try {
          resolve(outcome());
        } catch (err) {
          reject(err);
        }
      };
      const fail = (err: AgentError, keep: boolean) =>
        finish(() => {
          throw err;
        }, keep);
      const timer = setTimeout(
        () =>
          fail(
            nonRetryable(`evaluation stopped after its time limit of ${limits.timeLimitMs} ms`, {
              code: "DEADLINE_EXCEEDED",
              details: { timeLimitMs: limits.timeLimitMs },
            }),
            false,
          ),
        limits.timeLimitMs + killGraceMs,
      );
      const onAbort = () =>
        fail(nonRetryable("evaluation cancelled", { code: "CANCELLED" }), false);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      slot.onReply = (reply) => {
        if (reply.id !== id) return;
        if ("json" in reply) finish(() => JSON.parse(reply.json), true);
        else fail(failureError(reply.error, limits), true);
      };
      slot.onExit = (code, sig) => fail(crashError(slot, code, sig, this.memoryMb), false);
      slot.child.send({ id, expression, data, bindings, ...limits }, (err) => {
        if (err) fail(new AgentError(`the JSONata sandbox is gone: ${err.message}`), false);
      });
    });
  }

  private acquire(): Promise<Slot> {
    const slot = this.idle.pop();
    if (slot) return Promise.resolve(slot);
    if (this.all.size < this.size) return Promise.resolve(this.spawn());
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) {
      next(slot);
      return;
    }
    setRef(slot.child, false);
    this.idle.push(slot);
  }

  /** Kills a process that crashed, ran over or was cancelled; a waiter gets a fresh one. */
  private discard(slot: Slot): void {
    this.all.delete(slot);
    const at = this.idle.indexOf(slot);
    if (at >= 0) this.idle.splice(at, 1);
    slot.child.kill("SIGKILL");
    if (this.closed) return;
    const next = this.waiting.shift();
    if (next) next(this.spawn());
    else if (slot.started) this.warm();
  }

  private spawn(): Slot {
    const node = [
      process.execPath,
      `--max-old-space-size=${this.memoryMb}`,
      "--max-semi-space-size=16",
      "-e",
      jsonataChildSource,
      this.jsonataPath,
    ];
    // With util-linux setpriv, the kernel kills the child when this process dies, even while
    // it spins in a regex and cannot notice.
    const [command, ...args] = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", ...node] : node;
    const child = spawn(command!, args, {
      // A clean environment: no NODE_OPTIONS, no secrets.
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: {},
      serialization: "json",
    });
    track(child);
    // Below the agent and the mesh in the CPU scheduler: a spinning evaluation must not starve them.
    if (child.pid) {
      try {
        setPriority(child.pid, 10);
      } catch {}
    }
    const slot: Slot = { child, ready: Promise.resolve(), started: false, stderrHead: "" };
    slot.ready = new Promise<void>((resolve, reject) => {
      const onReady = (m: { ready?: boolean }) => {
        if (!m.ready) return;
        child.off("message", onReady);
        slot.started = true;
        resolve();
      };
      child.on("message", onReady);
      child.once("exit", (code, sig) => reject(new Error(`exited (${sig ?? code}) at start-up`)));
      child.once("error", reject);
    });
    slot.ready.catch(() => undefined);
    child.stderr?.on("data", (chunk: Buffer) => {
      if (slot.stderrHead.length < 8_192) slot.stderrHead += chunk.toString("utf8");
    });
    child.on("message", (m: ChildReply) => slot.onReply?.(m));
    // "close" comes after stderr has been read to its end, which the crash report needs.
    child.on("close", (code, sig) => {
      slot.onExit?.(code, sig);
      if (this.all.has(slot)) this.discard(slot);
    });
    child.on("error", () => undefined); // an exit follows
    this.all.add(slot);
    setRef(child, false);
    return slot;
  }
}

/** An idle process must not keep the agent's event loop alive; a busy one does. */
function setRef(child: ChildProcess, ref: boolean): void {
  const handles = [child, child.channel, child.stderr as Socket | null];
  for (const h of handles) {
    if (!h) continue;
    if (ref) h.ref?.();
    else h.unref?.();
  }
}

function failureError(f: ChildFailure, limits: JsonataLimits): AgentError {
  if (f.kind === "size") {
    return nonRetryable(`result is ${f.bytes} bytes, more than the limit of ${limits.maxBytes}`, {
      code: "RESOURCE_EXHAUSTED",
      details: { bytes: f.bytes, maxBytes: limits.maxBytes },
    });
  }
  const text = f.code ? `${f.code} ${f.message}` : (f.message ?? "unknown error");
  const details = { code: f.code, position: f.position, token: f.token };
  if (f.kind === "compile") {
    return nonRetryable(`invalid expression: ${text}`, { code: "INVALID_ARGUMENT", details });
  }
  if (f.code === "D1012") {
    return nonRetryable(`evaluation stopped after its time limit: ${text}`, {
      code: "DEADLINE_EXCEEDED",
      details,
    });
  }
  // Stack depth, sequence length, range size, or a JavaScript size limit (RangeError).
  if (f.code === "D1011" || f.code === "D2014" || f.code === "D2015" || f.name === "RangeError") {
    return nonRetryable(`evaluation exceeded a limit: ${text}`, {
      code: "RESOURCE_EXHAUSTED",
      details,
    });
  }
  return nonRetryable(`evaluation failed: ${text}`, { code: "INVALID_ARGUMENT", details });
}

function crashError(
  slot: Slot,
  code: number | null,
  signal: NodeJS.Signals | null,
  memoryMb: number,
): AgentError {
  const how = signal ?? `exit code ${code}`;
  if (
    /heap out of memory|invalid size error|invalid array length|allocation failed/i.test(
      slot.stderrHead,
    )
  ) {
    return nonRetryable(
      `evaluation ran out of memory (limit ${memoryMb} MiB); its process was ended (${how})`,
      {
        code: "RESOURCE_EXHAUSTED",
        details: { memoryMb },
      },
    );
  }
  return nonRetryable(`evaluation crashed its sandbox process (${how})`, {
    code: "RESOURCE_EXHAUSTED",
    details: { memoryMb },
  });
}
