/**
 * Mesh components as child processes (`agentmesh serve <name>`), for tests
 * that kill them. Each child is tracked and killed when the test ends, even
 * if the test fails.
 *
 * @example
 * const executor = await spawnComponent("executor", mesh.childEnv());
 * executor.kill("SIGKILL");
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { settings } from "../config/settings.js";

export interface ChildComponent {
  readonly process: ChildProcess;
  readonly address: string;
  readonly spiffeId: string;
  readonly readyMs: number;
  /** Its `/metrics` `/healthz` `/readyz` base URL, from the ready line. */
  readonly http: string | undefined;
  /** The gateway's public URL, from its ready line. */
  readonly url: string | undefined;
  /** Output so far, for failure messages. */
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const children = new Set<ChildProcess>();

/** Starts `agentmesh serve <name>` and resolves once it prints its ready line. */
export async function spawnComponent(
  name: string,
  env: Record<string, string>,
  timeoutMs = 25_000,
): Promise<ChildComponent> {
  // AGENTMESH_CPU_PROF_DIR: each child writes a V8 CPU profile there when it exits
  // (`--cpu-prof` is refused in NODE_OPTIONS); see bench/profile-goals.ts.
  const profileDir = settings.cpuProfileDir.read(process.env);
  const profile = profileDir
    ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}.cpuprofile`]
    : [];
  const child = spawn(process.execPath, [...profile, resolve("bin/agentmesh.js"), "serve", name], {
    env: { ...process.env, ...env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.once("exit", () => children.delete(child));
  const ready = await new Promise<{
    address: string;
    spiffeId: string;
    readyMs: number;
    http: string | undefined;
    url: string | undefined;
  }>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not get ready in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      out += `${line}\n`;
      if (!line.startsWith("{")) return;
      try {
        const msg = JSON.parse(line) as {
          event?: string;
          address: string;
          spiffeId: string;
          readyMs: number;
          http: string | undefined;
          url: string | undefined;
        };
        if (msg.event === "ready") {
          clearTimeout(timer);
          resolveReady(msg);
        }
      } catch {
        // Not our line.
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before it was ready:\n${out}`));
    });
  });
  return {
    process: child,
    ...ready,
    output: () => out,
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

/** Kills every child still running (afterAll / afterEach). */
export async function killAllChildren(): Promise<void> {
  await Promise.all(
    [...children].map(
      (c) =>
        new Promise<void>((r) => {
          if (c.exitCode !== null || c.signalCode !== null) return r();
          c.once("exit", () => r());
          c.kill("SIGKILL");
        }),
    ),
  );
}

process.once("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});
