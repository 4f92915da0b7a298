/**
 * What the control-plane tests share: a throwaway CA, the committed compiled
 * policy as every server's authorizer, a migrated store in a schema of its
 * own, and typed mTLS clients as any identity. Everything is real; `cleanup`
 * closes and removes it all.
 *
 * @example
 * const h = await openHarness(pg.url, ["registry", "agent-text"]);
 * const server = await h.serve("registry", RegistryService, registry.impl);
 * const registry = await h.client(RegistryService, server, "agent-text");
 * await h.cleanup();
 */
import type { DescService } from "@bufbuild/protobuf";
import { createLogger, type Logger } from "../lib/log/logger.js";
import { createPolicyAuthorizer } from "../lib/policy/authorizer.js";
import { openPolicyEngine, type PolicyEngine } from "../lib/policy/engine.js";
import { committedBundlePath } from "../lib/policy/testing.js";
import {
  type Client,
  createChannel,
  createClient,
  createServer,
  type MeshChannel,
  type MeshServer,
  type ServiceImpl,
} from "../lib/rpc/index.js";
import { createTestPki, type TestPki } from "../lib/rpc/testing.js";
import type { Store } from "../lib/store/index.js";
import { openTestStore, type TestStore } from "../lib/store/testing.js";
import { createMeshMetrics } from "../lib/telemetry/metrics.js";

export interface Harness {
  pki: TestPki;
  engine: PolicyEngine;
  store: Store;
  log: Logger;
  /** A server named `name` (its certificate) serving one service with the real policy. */
  serve<S extends DescService>(name: string, service: S, impl: ServiceImpl<S>): Promise<MeshServer>;
  /** A client of `service` on `server` (whose certificate is `serverName`), calling as `as`. */
  client<S extends DescService>(
    service: S,
    server: { address: string },
    serverName: string,
    as: string,
  ): Promise<Client<S>>;
  cleanup(): Promise<void>;
}

export async function openHarness(databaseUrl: string, names: readonly string[]): Promise<Harness> {
  const pki = await createTestPki(names);
  const engine = await openPolicyEngine({ path: committedBundlePath, watch: false });
  let test: TestStore;
  try {
    test = await openTestStore({ databaseUrl, poolSize: 12 });
  } catch (err) {
    await engine.close();
    await pki.cleanup();
    throw err;
  }
  const log = createLogger({ name: "control-plane-test" });
  const authorizer = createPolicyAuthorizer(engine);
  const metrics = createMeshMetrics();
  const servers: MeshServer[] = [];
  const channels: MeshChannel[] = [];
  return {
    pki,
    engine,
    store: test.store,
    log,
    async serve(name, service, impl) {
      const server = createServer({
        certs: await pki.watch(name),
        authorizer,
        metrics,
        logger: log,
      });
      server.add(service, impl);
      await server.listen();
      servers.push(server);
      return server;
    },
    async client(service, server, serverName, as) {
      const channel = createChannel({
        address: server.address,
        certs: await pki.watch(as),
        server: pki.id(serverName),
        metrics,
        logger: log,
      });
      channels.push(channel);
      return createClient(service, channel);
    },
    async cleanup() {
      for (const c of channels) c.close();
      await Promise.all(servers.map((s) => s.shutdown(200)));
      await engine.close();
      await test.cleanup();
      await pki.cleanup();
    },
  };
}
