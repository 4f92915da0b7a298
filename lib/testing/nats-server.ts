/**
 * A private nats-server for tests that need their own (TLS, permissions,
 * faults): the project's pinned binary (`.ci/tools.sh` installs it in
 * `$HOME/go/bin`), a free port on 127.0.0.1, JetStream in a temporary folder,
 * and the caller's configuration appended to those basics. Never the shared
 * server on 4222.
 *
 * @example
 * const nats = await startNatsServer({ config: generatedConfText });
 * // ... nats.url, nats.kill(), nats.start() (same port and store), nats.reload()
 * await nats.stop();
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./free-port.js";

export { freePort };

/** The version CI pins (`.ci/tools.sh`); README states the minimum. */
export const pinnedNatsVersion = "2.15.3";

/** The pinned nats-server: `$HOME/go/bin/nats-server` (not Debian's older one), else `nats-server` on PATH. */
export function natsServerBinary(): string {
  const pinned = join(homedir(), "go", "bin", "nats-server");
  return existsSync(pinned) ? pinned : "nats-server";
}

export interface NatsServerOptions {
  /**
   * Configuration text appended after `listen` and `jetstream` (which this
   * helper writes). A function receives the port and store folder first.
   */
  config?: string | ((where: { port: number; dir: string }) => string);
  /** `nats` (default) or `tls` in `url`. */
  scheme?: "nats" | "tls";
}

export interface PrivateNatsServer {
  /** `<scheme>://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Folder holding the configuration and the JetStream store. */
  readonly dir: string;
  /** What the server logged (last 16 kB), e.g. to find an authorization error. */
  log(): string;
  /** Starts it again on the same port and store (after `kill`). */
  start(): Promise<void>;
  /** SIGKILL, keeping the store. */
  kill(): Promise<void>;
  /** SIGHUP: re-reads the configuration and certificate files. */
  reload(): void;
  /** Kills it and deletes its folder. */
  stop(): Promise<void>;
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<PrivateNatsServer> {
  const dir = await mkdtemp(join(tmpdir(), "agentmesh-nats-"));
  const port = await freePort();
  const extra =
    typeof options.config === "function" ? options.config({ port, dir }) : (options.config ?? "");
  const confPath = join(dir, "nats.conf");
  await writeFile(
    confPath,
    `listen: "127.0.0.1:${port}"\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\n${extra}\n`,
  );
  let child: ChildProcess | undefined;
  let output = "";
  const server: PrivateNatsServer = {
    url: `${options.scheme ?? "nats"}://127.0.0.1:${port}`,
    port,
    dir,
    log: () => output,
    async start() {
      const c = spawn(natsServerBinary(), ["-c", confPath], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      child = c;
      let ready: () => void;
      let failed: (err: Error) => void;
      const started = new Promise<void>((resolve, reject) => {
        ready = resolve;
        failed = reject;
      });
      c.stderr?.on("data", (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-16_000);
        if (output.includes("Server is ready")) ready();
      });
      c.once("exit", (code) => failed(new Error(`nats-server exited (${code}): ${output}`)));
      c.once("error", (err) => failed(err));
      const timer = setTimeout(() => failed(new Error(`nats-server not ready: ${output}`)), 20_000);
      try {
        await started;
      } finally {
        clearTimeout(timer);
      }
    },
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await exited;
    },
    reload() {
      child?.kill("SIGHUP");
    },
    async stop() {
      await server.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
