/**
 * One gateway for a test file: a fresh test PKI, the committed policy, the
 * stand-in internal services on real mTLS servers (swap for the real ones by
 * address when they land), an isolated PostgreSQL schema with tenants and
 * keys, and the gateway in front on a free loopback port.
 */

import { type Gateway, type GatewayOptions, startGateway } from "../gateway/start-gateway.js";
import { type StandInMesh, startStandInMesh } from "../gateway/testing.js";
import { createLogger } from "../lib/log/logger.js";
import { createPolicyAuthorizer } from "../lib/policy/authorizer.js";
import { openPolicyEngine } from "../lib/policy/engine.js";
import { committedWasmPath } from "../lib/policy/testing.js";
import { createTestPki, type TestPki } from "../lib/rpc/testing.js";
import { newApiKey } from "../lib/store/api-key-secret.js";
import type { Store } from "../lib/store/store.js";
import { openTestStore } from "../lib/store/testing.js";

export interface GatewayFixture {
  gateway: Gateway;
  url: string;
  store: Store;
  mesh: StandInMesh;
  pki: TestPki;
  /** API keys by name: admin (ops, platform.admin), acmeAdmin, acmeWriter, acmeReader, globexWriter. */
  keys: Record<"admin" | "acmeAdmin" | "acmeWriter" | "acmeReader" | "globexWriter", string>;
  /** Makes another key. */
  key(tenantId: string, roles: string[], expiresAt?: Date): Promise<string>;
  close(): Promise<void>;
}

export async function startGatewayFixture(
  databaseUrl: string,
  options: Partial<GatewayOptions> & { stepMs?: number } = {},
): Promise<GatewayFixture> {
  const pki = await createTestPki(["gateway", "executor", "registry", "planner", "learning"]);
  const engine = await openPolicyEngine({ wasmPath: committedWasmPath, watch: false });
  const authorizer = createPolicyAuthorizer(engine);
  const mesh = await startStandInMesh({
    pki,
    authorizer,
    ...(options.stepMs === undefined ? {} : { executor: { stepMs: options.stepMs } }),
  });
  const t = await openTestStore({ databaseUrl });
  const { store } = t;
  for (const id of ["ops", "acme", "globex"]) await store.tenants.create({ id, displayName: id });
  const key = async (tenantId: string, roles: string[], expiresAt?: Date) => {
    const k = newApiKey();
    await store.tenant(tenantId).apiKeys.create({
      keyId: k.keyId,
      secretHash: k.secretHash,
      name: roles.join("+"),
      roles,
      ...(expiresAt ? { expiresAt } : {}),
    });
    return k.secret;
  };
  const keys = {
    admin: await key("ops", ["platform.admin"]),
    acmeAdmin: await key("acme", ["tenant.admin"]),
    acmeWriter: await key("acme", ["goals.write"]),
    acmeReader: await key("acme", ["goals.read"]),
    globexWriter: await key("globex", ["goals.write"]),
  };
  const { stepMs: _, ...gatewayOptions } = options;
  const gateway = await startGateway({
    store,
    authorizer,
    policyReady: () => engine.ready,
    certs: await pki.watch("gateway"),
    upstreams: mesh.upstreams,
    port: 0,
    log: createLogger({ name: "gateway", level: process.env.LOG_LEVEL ?? "silent" }),
    ...gatewayOptions,
  });
  return {
    gateway,
    url: gateway.url,
    store,
    mesh,
    pki,
    keys,
    key,
    async close() {
      await gateway.close();
      await mesh.close();
      await engine.close();
      await t.cleanup();
      await pki.cleanup();
    },
  };
}
