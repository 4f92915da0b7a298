/**
 * A PostgreSQL server of a test's own (the embedded binaries on a temporary
 * data directory and a fixed free port), which a test may kill -9 and start
 * again on the same data, the way an operator's database crashes and comes
 * back. The shared server at 127.0.0.1:5432 is never touched.
 *
 * @example
 * const pg = await startPrivatePostgres();
 * await pg.kill();   // kill -9 the postmaster
 * await pg.start();  // same port, same data
 * await pg.stop();
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../store/embedded-postgres.js";
import { freePort } from "./free-port.js";
import { waitFor } from "./wait-for.js";

export interface PrivatePostgres {
  /** Connection string (with its password; never log it). Stable across restarts. */
  readonly url: string;
  /** kill -9 the postmaster and wait until it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  stop(): Promise<void>;
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const home = await mkdtemp(join(tmpdir(), "private-pg-"));
  const dataDir = join(home, "data");
  const port = await freePort();
  let server: EmbeddedPostgres = await startEmbeddedPostgres({ dataDir, port });
  const pg: PrivatePostgres = {
    url: server.url,
    async kill() {
      const pid = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
      process.kill(pid, "SIGKILL");
      await waitFor("PostgreSQL to die", () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
      // Forget the dead server (its pg_ctl stop fails harmlessly).
      await server.stop().catch(() => undefined);
    },
    async start() {
      server = await startEmbeddedPostgres({ dataDir, port });
    },
    async stop() {
      await server.stop().catch(() => undefined);
      await rm(home, { recursive: true, force: true });
    },
  };
  return pg;
}
