/**
 * Test helpers for the real infrastructure tests run against: PostgreSQL and
 * NATS JetStream. Under CI (`CI=true`) a missing server fails the test run;
 * elsewhere the tests that need it skip with a loud message.
 *
 * @example
 * const pg = await needPostgres();
 * describe.skipIf(!pg)("store", () => { ... pg.url ... });
 */
import { randomBytes } from "node:crypto";
import { connect } from "node:net";

export const defaultDatabaseUrl = "postgres://postgres@127.0.0.1:5432/test";
export const defaultNatsUrl = "nats://127.0.0.1:4222";

export interface Infra {
  url: string;
}

/** PostgreSQL from DATABASE_URL (default the local `test` database), or undefined when absent outside CI. */
export function needPostgres(): Promise<Infra | undefined> {
  return need("PostgreSQL", process.env.DATABASE_URL || defaultDatabaseUrl, 5432);
}

/** NATS from NATS_URL (default 127.0.0.1:4222), or undefined when absent outside CI. */
export function needNats(): Promise<Infra | undefined> {
  return need("NATS", process.env.NATS_URL || defaultNatsUrl, 4222);
}

/** A short random id for isolating a test run: schema names, stream and subject prefixes. */
export function runId(prefix = "t"): string {
  return `${prefix}${randomBytes(5).toString("hex")}`;
}

const probes = new Map<string, Promise<boolean>>();

async function need(what: string, url: string, defaultPort: number): Promise<Infra | undefined> {
  const { hostname, port } = new URL(url);
  const target = `${hostname}:${port || defaultPort}`;
  let probe = probes.get(target);
  if (!probe) {
    probe = reachable(hostname, Number(port || defaultPort));
    probes.set(target, probe);
  }
  if (await probe) return { url };
  const message = `${what} is not reachable at ${target}`;
  if (process.env.CI === "true") {
    throw new Error(`${message}; CI requires it (see .ci/run)`);
  }
  console.warn(`\n!!! ${message}: SKIPPING the tests that need it. Start it to run them. !!!\n`);
  return undefined;
}

function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
