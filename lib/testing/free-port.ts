/**
 * A TCP port on 127.0.0.1 that was free a moment ago (tests and benchmarks
 * that need a fixed port, e.g. to tell one process where another will listen).
 *
 * Chosen below the kernel's ephemeral range: a port the kernel hands out for
 * `listen(0)` is from the same range as the local ports of outgoing
 * connections, so between this check and the caller's bind a database or
 * NATS connection of any process could take it (EADDRINUSE, seen under
 * load). Below the range only another explicit bind can.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** Lowest port tried; below it sit the well-known services (PostgreSQL, NATS, ...). */
const lowest = 10_000;

export async function freePort(): Promise<number> {
  const ceiling = ephemeralRangeStart();
  if (ceiling - lowest >= 1_000) {
    for (let tries = 0; tries < 50; tries++) {
      const port = lowest + Math.floor(Math.random() * (ceiling - lowest));
      if (await bindable(port)) return port;
    }
  }
  return kernelChosen();
}

/** The first port of the kernel's ephemeral range (Linux), else the common default. */
export function ephemeralRangeStart(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > 0 ? n : 32_768;
  } catch {
    return 32_768;
  }
}

async function bindable(port: number): Promise<boolean> {
  const srv = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => resolve(true));
  });
  if (ok) {
    srv.close();
    await once(srv, "close");
  }
  return ok;
}

async function kernelChosen(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, "close");
  return port;
}
