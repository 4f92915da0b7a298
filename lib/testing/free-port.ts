/** A TCP port on 127.0.0.1 that was free a moment ago (tests and benchmarks that need a fixed port). */
import { once } from "node:events";
import { createServer } from "node:net";

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, "close");
  return port;
}
